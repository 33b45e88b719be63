"""The inventory annotation (read back with the operator's parser) and the metrics endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from gpu_operator.inventory import parse_inventory
from mig_manager.agent import inventory
from mig_manager.agent.metrics import HttpServer, Metrics
from mig_manager.devices.simulated import SimulatedBackend, init_host
from mig_manager.parted import apply_config, discover
from mig_manager.planner import device_types_of_node, generate_config


def test_inventory_matches_the_operators_format(tmp_path: Path) -> None:
    backend = SimulatedBackend(init_host(tmp_path / "gpus.json", "H100x2,0x1EB810DEx1"))
    spec = generate_config(device_types_of_node([g.node for g in discover(backend)]))
    assert apply_config(backend, spec, "all-balanced").ok
    text = inventory.encode(inventory.read(backend))
    parsed = parse_inventory(text)
    assert [g.index for g in parsed.gpus] == [0, 1, 2]
    h100, _, t4 = parsed.gpus
    assert h100.pci_id == "0x233010DE" and h100.mig_capable and h100.mig_enabled
    assert dict(h100.mig_devices) == {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}
    assert not t4.mig_capable and t4.mig_enabled is None
    assert text == inventory.encode(inventory.read(backend))  # stable


def test_metrics_text_and_endpoints() -> None:
    metrics = Metrics("node-1")
    metrics.observe_run("success", 1.5)
    metrics.observe_run("failed", 0.2)
    metrics.set_state("success")
    text = metrics.render()
    assert 'mig_manager_reconfigurations_total{node="node-1",result="success"} 1' in text
    assert 'mig_manager_reconfiguration_duration_seconds_bucket{node="node-1",le="2"} 2' in text
    assert 'mig_manager_reconfiguration_duration_seconds_bucket{node="node-1",le="0.5"} 1' in text
    assert 'mig_manager_reconfiguration_duration_seconds_count{node="node-1"} 2' in text
    assert 'mig_manager_state{node="node-1",state="success"} 1' in text
    assert 'mig_manager_state{node="node-1",state="pending"} 0' in text
    assert "mig_manager_last_success_timestamp_seconds" in text
    ready = [False]
    server = HttpServer(metrics, "127.0.0.1", 0, lambda: True, lambda: ready[0])
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            assert "mig_manager_state" in resp.read().decode()
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:
            assert resp.status == 200
        try:
            urllib.request.urlopen(f"{base}/readyz", timeout=10)
            raise AssertionError("not ready yet")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        ready[0] = True
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as resp:
            assert resp.status == 200
    finally:
        server.stop()
