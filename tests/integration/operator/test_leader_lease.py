"""Leader election against kubesim: a Lease deleted under the leader (helm uninstall) is lost, never recreated."""

from __future__ import annotations

import threading

from kubernetes import client, config

from gpu_operator.apply import Kube
from gpu_operator.leader import LeaderElector
from kubesim.server import KubeSim
from kubesim.testing import wait_for

NS = "default"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


def test_a_deleted_lease_is_lost_not_recreated(kubesim: KubeSim) -> None:
    kube = Kube(config.new_client_from_config(config_file=str(kubesim.kubeconfig)))
    elector = LeaderElector(kube, NS, "gpu-operator-lock", "replica-a", lease_duration=1.0, renew_period=0.05)
    assert elector.try_acquire_or_renew()  # the first acquisition creates the Lease when there is none
    leases = client.CoordinationV1Api(kube.api)
    assert leases.read_namespaced_lease("gpu-operator-lock", NS).spec.holder_identity == "replica-a"

    lost = threading.Event()
    stop = threading.Event()
    keeper = threading.Thread(target=elector.keep, args=(stop, lost.set), daemon=True)
    keeper.start()
    leases.delete_namespaced_lease("gpu-operator-lock", NS)
    try:
        wait_for(lost.is_set, 20.0, 0.05, "the leader notices its lease is gone")
    finally:
        stop.set()
        keeper.join(10)
    assert not elector.is_leader
    assert [item.metadata.name for item in leases.list_namespaced_lease(NS).items] == []
    assert kube.get(f"{LEASES}/gpu-operator-lock") is None
