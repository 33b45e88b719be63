"""Bad `nvidia.com/mig.config` values: refused by the API server, ignored by the agent, ending `failed` with a reason,
or `success` with a warning, gates as they were and the GPUs unchanged, on one running agent against kubesim."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from corpus_support import CASES, missing, params
from kubernetes import client

from kubesim.server import Config, KubeSim
from kubesim.testing import kube_client, wait_for
from mig_manager.agent.decide import Kind, Observed, decide
from mig_manager.agent.labels import CONFIG_LABEL, JOURNAL_ANNOTATION, REASON_ANNOTATION, STATE_LABEL
from mig_manager.agent.main import build_agent
from mig_manager.agent.settings import Settings
from mig_manager.cli import mig_parted_main
from mig_manager.devices.simulated import init_host, read_state
from mig_manager.devices.simulated_host import init_host_services

NODE = "gpu-node-1"
NAMESPACE = "gpu-operator"
GATES = {
    "nvidia.com/gpu.deploy.device-plugin": "true",
    "nvidia.com/gpu.deploy.gpu-feature-discovery": "true",
    "nvidia.com/gpu.deploy.dcgm-exporter": "true",
    "nvidia.com/gpu.deploy.dcgm": "false",
}
CONFIG = yaml.safe_load((CASES / "labels.yaml").read_text())["config"]


@dataclass
class Live:
    core: client.CoreV1Api
    gpu_state: Path


def node(core: client.CoreV1Api) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(core.read_node(NODE, _preload_content=False).data)
    return data


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    d = tmp_path_factory.mktemp("node")
    gpu_state, config = d / "gpus.json", d / "config.yaml"
    init_host(gpu_state, "H100x8")
    config.write_text(CONFIG)
    assert mig_parted_main(["apply", "-f", str(config), "-c", "all-1g.10gb", "--sim-state", str(gpu_state)]) == 0
    (d / "clients.yaml").write_text("version: v1\nsystemd-services: []\n")
    init_host_services(d / "services.json", {"kubelet.service": {"active": "active"}}, state_file=True)
    with KubeSim(Config(bookmark_interval=1.0)) as sim:
        core = client.CoreV1Api(kube_client(sim))
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": dict(GATES)}})
        settings = Settings(
            node_name=NODE,
            kubeconfig=str(sim.kubeconfig),
            config_file=str(config),
            gpu_clients_file=str(d / "clients.yaml"),
            default_gpu_clients_namespace=NAMESPACE,
            backend="simulated",
            sim_state=str(gpu_state),
            host="simulated",
            sim_host_services=str(d / "services.json"),
            generated_config_file=str(d / "generated.yaml"),
            pod_wait_timeout=10.0,
            mode_change_delay=0.0,
            backoff_initial=0.3,
            backoff_max=1.0,
            config_poll_interval=0.1,
            api_timeout=5.0,
            watch_timeout=10.0,
            metrics_port=-1,
        )
        agent, _ = build_agent(settings)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        try:
            assert agent.ready.wait(30), "the agent did not start"
            yield Live(core, gpu_state)
        finally:
            agent.stop()
            thread.join(30)


def test_every_label_case_has_an_outcome() -> None:
    for case in yaml.safe_load((CASES / "labels.yaml").read_text())["cases"]:
        assert case["outcome"] in ("failed", "warned", "rejected", "idle"), case["name"]


@pytest.mark.parametrize("case", params("labels"))
def test_bad_label_value(case: dict[str, Any], live: Live) -> None:
    core, value = live.core, case["value"]
    if case["outcome"] == "idle":
        action = decide(Observed({**GATES, CONFIG_LABEL: value}, {}), {})
        assert action.kind is Kind.IDLE and action.patch is None, action
        assert not missing(action.kind.name, case["expect"]), action
        return
    before_node = node(core)["metadata"]
    before_gpus = read_state(live.gpu_state)["gpus"]
    if case["outcome"] == "rejected":
        with pytest.raises(client.ApiException) as err:
            core.patch_node(
                NODE, {"metadata": {"labels": {CONFIG_LABEL: value}}}, _content_type="application/merge-patch+json"
            )
        assert err.value.status == 422
        message = json.loads(err.value.body)["message"]
        assert not missing(message, case["expect"]), f"message lacks {missing(message, case['expect'])}: {message}"
        assert node(core)["metadata"]["resourceVersion"] == before_node["resourceVersion"]
        return
    core.patch_node(NODE, {"metadata": {"labels": {CONFIG_LABEL: value}}}, _content_type="application/merge-patch+json")

    def settled() -> dict[str, Any] | None:
        meta = node(core)["metadata"]
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        reason = annotations.get(REASON_ANNOTATION, "")
        if labels.get(STATE_LABEL) not in ("success", "failed") or JOURNAL_ANNOTATION in annotations:
            return None
        if f"'{value}'" not in reason and f'"{value}"' not in reason:
            return None  # still the outcome of the previous case
        return dict(meta)

    meta = wait_for(settled, timeout=20, what=f"the agent's outcome for {value}")
    reason = meta["annotations"][REASON_ANNOTATION]
    want = "success" if case["outcome"] == "warned" else "failed"
    assert meta["labels"][STATE_LABEL] == want, f"state {meta['labels'][STATE_LABEL]}: {reason}"
    assert not missing(reason, case["expect"]), f"reason lacks {missing(reason, case['expect'])}: {reason}"
    if case["outcome"] == "warned":

        def warning_events() -> list[str]:  # the Event follows the patch
            events = json.loads(core.list_namespaced_event("default", _preload_content=False).data)["items"]
            return [e["message"] for e in events if e["reason"] == "MigConfigWarning" and f"'{value}'" in e["message"]]

        warnings = wait_for(warning_events, timeout=10, what=f"a MigConfigWarning event for {value}")
        assert not missing(warnings[-1], case["expect"]), f"event lacks {missing(warnings[-1], case['expect'])}"
    assert {k: meta["labels"].get(k) for k in GATES} == GATES, "gates not restored"
    assert read_state(live.gpu_state)["gpus"] == before_gpus, "the GPUs changed"
