"""Acceptance 6 and the config source: quick label changes end at the later config; an edit of the custom config file
is picked up; the generated config and its ConfigMap; the fallback default config; drift found by the resync."""

from __future__ import annotations

import json
import threading
import urllib.request

from agent_support import (
    NAMESPACE,
    NODE,
    FakeDaemonSets,
    ThreadAgent,
    iter_gate_values,
    labels_of,
    reason_of,
    run_process,
    set_labels,
    wait_state,
)

from kubesim.testing import wait_for
from mig_manager.agent.labels import STATE_LABEL
from mig_manager.agent.main import run_agent
from mig_manager.agent.source import GENERATED_HEADER
from mig_manager.devices.simulated import SimulatedBackend, init_host
from mig_manager.parted import apply_config, assert_config
from mig_manager.spec import load_spec_file


def _applied(node, config: str) -> bool:  # type: ignore[no-untyped-def]
    spec = load_spec_file(str(node.config)).spec
    return assert_config(SimulatedBackend(node.gpu_state), spec, config).ok


def test_two_quick_label_changes_end_at_the_later_config(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-1g.10gb"})
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_state(core, "success", config="all-balanced")
        assert _applied(gpu_node, "all-balanced")
        # And while a run is in progress (waiting for pods): it finishes, then the later config is applied.
        set_labels(core, {"nvidia.com/mig.config": "all-3g.40gb"})
        wait_for(lambda: labels_of(core).get(STATE_LABEL) == "pending", timeout=30, what="pending")
        set_labels(core, {"nvidia.com/mig.config": "all-7g.80gb"})
        wait_state(core, "success", config="all-7g.80gb")
    assert _applied(gpu_node, "all-7g.80gb")


def test_an_edit_of_the_custom_config_file_is_picked_up(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    custom = """version: v1
mig-configs:
  custom:
    - devices: all
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
"""
    gpu_node.config.write_text(custom)
    with FakeDaemonSets(kubesim) as daemonsets, ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "custom"})
        wait_state(core, "success", config="custom")
        # A mounted ConfigMap is updated in place (a new file swapped in): same label, new content.
        new = gpu_node.config.with_name("new.yaml")
        new.write_text(custom.replace('"3g.40gb": 2', '"1g.10gb": 7'))
        new.replace(gpu_node.config)
        wait_for(lambda: _applied(gpu_node, "custom"), timeout=30, what="the edited config applied")
        wait_state(core, "success", config="custom")
    states = list(iter_gate_values(daemonsets.seen, STATE_LABEL))
    assert states[-4:] == ["pending", "success", "pending", "success"]


def test_the_periodic_resync_finds_gpus_changed_behind_its_back(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.configure(resync_period=0.5)
    spec = load_spec_file(str(gpu_node.config)).spec
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_state(core, "success", config="all-balanced")
        assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-1g.10gb").ok  # someone else
        wait_for(lambda: _applied(gpu_node, "all-balanced"), timeout=30, what="all-balanced again")
        wait_state(core, "success", config="all-balanced")


def test_generated_config_is_written_and_published_as_a_configmap(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    core.create_namespaced_pod(
        NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "nvidia-mig-manager-abc"},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]},
        },
    )
    pod_uid = json.loads(core.read_namespaced_pod("nvidia-mig-manager-abc", NAMESPACE, _preload_content=False).data)[
        "metadata"
    ]["uid"]
    gpu_node.configure(config_file="", pod_name="nvidia-mig-manager-abc", pod_namespace=NAMESPACE)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node) as runner:
        assert runner.generated
        text = (gpu_node.dir / "generated.yaml").read_text()
        assert text.startswith(GENERATED_HEADER)
        cm = json.loads(core.read_namespaced_config_map(f"{NODE}-mig-config", NAMESPACE, _preload_content=False).data)
        assert cm["data"]["config.yaml"] == text
        assert cm["metadata"]["labels"] == {
            "app.kubernetes.io/component": "nvidia-mig-manager",
            "nvidia.com/node-name": NODE,
        }
        assert cm["metadata"]["ownerReferences"][0]["uid"] == pod_uid
        assert cm["metadata"]["ownerReferences"][0]["kind"] == "Pod"
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_state(core, "success", config="all-balanced")


def test_default_config_file_when_the_gpus_give_no_profiles(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    init_host(gpu_node.gpu_state, "0x1EB810DEx2")  # no MIG-capable GPU: nothing to generate from
    default = gpu_node.dir / "config-default.yaml"
    default.write_text("version: v1\nmig-configs:\n  all-disabled:\n    - devices: all\n      mig-enabled: false\n")
    gpu_node.configure(config_file="", default_config_file=str(default))
    with ThreadAgent(gpu_node) as runner:
        assert runner.agent.source.path == str(default)
        set_labels(core, {"nvidia.com/mig.config": "all-disabled"})
        wait_state(core, "success", config="all-disabled")


def test_start_up_errors_exit_1(gpu_node) -> None:  # type: ignore[no-untyped-def]
    proc = run_process(gpu_node, NODE_NAME="")
    assert proc.returncode == 1 and "node name is required" in proc.stderr
    proc = run_process(gpu_node, CONFIG_FILE=str(gpu_node.dir / "missing.yaml"))
    assert proc.returncode == 1 and "failed to read custom config" in proc.stderr
    proc = run_process(gpu_node, GPU_CLIENTS_FILE=str(gpu_node.dir / "missing-clients.yaml"))
    assert proc.returncode == 1 and "cannot read the GPU clients file" in proc.stderr


def test_metrics_health_and_readiness_endpoints(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.configure(metrics_port=0, metrics_address="127.0.0.1")
    agent = ThreadAgent(gpu_node).agent
    thread = threading.Thread(target=run_agent, args=(agent,), daemon=True)
    thread.start()
    port = wait_for(lambda: agent.http_port, timeout=30, what="the HTTP server")
    base = f"http://127.0.0.1:{port}"
    try:
        with FakeDaemonSets(kubesim):
            set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
            wait_state(core, "success", config="all-balanced")
        wait_for(lambda: agent.ready.is_set(), timeout=30, what="ready")
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert f'mig_manager_reconfigurations_total{{node="{NODE}",result="success"}} 1' in text
        assert f'mig_manager_state{{node="{NODE}",state="success"}} 1' in text
        assert f'mig_manager_reconfiguration_duration_seconds_count{{node="{NODE}"}} 1' in text
        assert "MIG config 'all-balanced' applied" in reason_of(core)
    finally:
        agent.stop()
        thread.join(30)
