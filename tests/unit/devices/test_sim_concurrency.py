"""Several processes hammering one simulated state file: it always parses and no update is lost."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from mig_manager.catalog import Placement
from mig_manager.devices.simulated import SimulatedBackend, add_fault, init_host, read_state

WORKERS = 4
ROUNDS = 30
ONE_G = 19  # H100 1g.10gb GI profile id; CI profile 0 is its 1c


def _worker(path: str, worker: int) -> None:
    backend = SimulatedBackend(path)
    gpu = worker + 1
    for k in range(ROUNDS):
        gi = backend.create_gpu_instance(gpu, ONE_G, Placement(k % 7, 1))
        ci = backend.create_compute_instance(gpu, gi.id, 0, Placement(0, 1))
        backend.add_process(0, 1000 * worker + k)  # everyone writes GPU 0's entry
        backend.processes(gpu)
        json.loads(Path(path).read_text())  # a reader without the lock never sees a torn file
        if k < ROUNDS - 3:
            backend.destroy_compute_instance(gpu, gi.id, ci.id)
            backend.destroy_gpu_instance(gpu, gi.id)


def test_concurrent_processes_share_one_state_file(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    init_host(path, f"H100x{WORKERS + 1}", mig_enabled=True)
    add_fault(path, "processes", "UNKNOWN", times=0)  # never fires; counts every processes() call
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(path), w)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    state = read_state(path)
    assert sorted(state["gpus"][0]["processes"]) == sorted(1000 * w + k for w in range(WORKERS) for k in range(ROUNDS))
    assert state["faults"][0]["seen"] == WORKERS * ROUNDS
    backend = SimulatedBackend(path)
    expected = sorted(Placement(k % 7, 1) for k in range(ROUNDS - 3, ROUNDS))
    for w in range(WORKERS):
        instances = backend.gpu_instances(w + 1)
        assert [gi.placement for gi in instances] == expected
        assert all(len(gi.compute_instances) == 1 for gi in instances)
    assert not list(tmp_path.glob(".host.json.*.tmp"))  # no temp file left behind
