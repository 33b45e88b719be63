"""Benchmark kubesim: GETs per second from one client, LIST of 1,000 nodes with 30 labels each, and delivery of 1,000
events to 100 watchers, with the server's memory. Writes bench/results/kubesim.json.

The server runs as its own process (`python -m kubesim up`), so the client does not share its interpreter.
Run: .venv/bin/python bench/kubesim.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "kubesim.json"
TARGETS = {"gets_per_second": 1000, "list_1000_nodes_ms": 100}


def start_server(state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sim"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "up", "--port", "0", "--state-dir", str(state_dir), "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("kubesim serving at "):
        proc.kill()
        raise SystemExit(f"kubesim did not start: {line!r}")
    return proc, line.split()[-1]


def rss_mb(pid: int) -> dict[str, float]:
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


async def bench_gets(session: aiohttp.ClientSession, url: str, count: int) -> dict[str, float]:
    await session.post(
        f"{url}/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "bench"}, "data": {"k": "v" * 100}}
    )
    target = f"{url}/api/v1/namespaces/default/configmaps/bench"
    for _ in range(100):  # warm up
        async with session.get(target) as resp:
            await resp.read()
    started = time.perf_counter()
    for _ in range(count):
        async with session.get(target) as resp:
            await resp.read()
            assert resp.status == 200
    sequential = count / (time.perf_counter() - started)

    async def worker(n: int) -> None:
        for _ in range(n):
            async with session.get(target) as resp:
                await resp.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker(count // 8) for _ in range(8)))
    concurrent = (count // 8) * 8 / (time.perf_counter() - started)
    return {"sequential": round(sequential), "concurrent_8": round(concurrent)}


async def bench_list(session: aiohttp.ClientSession, url: str, nodes: int, runs: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(16)

    async def create(i: int) -> None:
        labels = {f"nvidia.com/label-{j}": f"value-{i}-{j}" for j in range(30)}
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": f"node-{i:04d}", "labels": labels},
            "status": {"capacity": {"cpu": "64", "nvidia.com/gpu": "8"}},
        }
        async with sem, session.post(f"{url}/api/v1/nodes", json=body) as resp:
            assert resp.status == 201, await resp.text()

    await asyncio.gather(*(create(i) for i in range(nodes)))
    transfer: list[float] = []
    decoded: list[float] = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        async with session.get(f"{url}/api/v1/nodes") as resp:
            raw = await resp.read()
        transfer.append((time.perf_counter() - started) * 1000)
        items = json.loads(raw)["items"]
        decoded.append((time.perf_counter() - started) * 1000)
        assert len(items) == nodes
        size = len(raw)
    return {
        "nodes": nodes,
        "labels_per_node": 30,
        "response_bytes": size,
        "first_ms": round(transfer[0], 1),
        "median_ms": round(statistics.median(transfer), 1),
        "p90_ms": round(sorted(transfer)[int(len(transfer) * 0.9) - 1], 1),
        "median_ms_including_client_json_decode": round(statistics.median(decoded), 1),
    }


async def bench_watch(session: aiohttp.ClientSession, url: str, watchers: int, events: int) -> dict[str, Any]:
    collection = f"{url}/api/v1/namespaces/bench-watch/configmaps"
    await session.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": "bench-watch"}})
    async with session.get(collection) as resp:
        rv = (await resp.json())["metadata"]["resourceVersion"]
    done = [asyncio.Event() for _ in range(watchers)]
    finish_times: list[float] = [0.0] * watchers
    opened = 0
    all_open = asyncio.Event()

    async def watch(index: int) -> None:
        nonlocal opened
        params = {"watch": "true", "resourceVersion": rv}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(collection, params=params, timeout=timeout) as resp:
            opened += 1
            if opened == watchers:
                all_open.set()
            seen = 0
            async for line in resp.content:
                if json.loads(line)["type"] == "ADDED":
                    seen += 1
                    if seen == events:
                        finish_times[index] = time.perf_counter()
                        done[index].set()
                        return

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    await asyncio.wait_for(all_open.wait(), 60)
    sem = asyncio.Semaphore(8)

    async def create(i: int) -> None:
        async with sem, session.post(collection, json={"metadata": {"name": f"cm-{i:04d}"}, "data": {"i": str(i)}}):
            pass

    started = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(events)))
    writes_done = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(d.wait() for d in done)), 300)
    for task in tasks:
        task.cancel()
    return {
        "watchers": watchers,
        "events": events,
        "deliveries": watchers * events,
        "writes_seconds": round(writes_done - started, 3),
        "all_delivered_seconds": round(max(finish_times) - started, 3),
        "deliveries_per_second": round(watchers * events / (max(finish_times) - started)),
    }


async def run(quick: bool) -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp))
        try:
            connector = aiohttp.TCPConnector(limit=200)
            async with aiohttp.ClientSession(connector=connector) as session:
                memory_idle = rss_mb(proc.pid)
                gets = await bench_gets(session, url, 1000 if quick else 5000)
                listing = await bench_list(session, url, 1000, 5 if quick else 20)
                memory_nodes = rss_mb(proc.pid)
                fanout = await bench_watch(session, url, 100, 200 if quick else 1000)
                memory_end = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "benchmark": "kubesim",
        "command": ".venv/bin/python bench/kubesim.py" + (" --quick" if quick else ""),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_at_start": load_at_start,
        },
        "gets_per_second": gets,
        "list_nodes": listing,
        "watch_fanout": fanout,
        "server_memory_mb": {
            "idle_rss": memory_idle.get("VmRSS"),
            "with_1000_nodes_rss": memory_nodes.get("VmRSS"),
            "end_rss": memory_end.get("VmRSS"),
            "peak_rss": memory_end.get("VmHWM"),
        },
        "targets": TARGETS,
        "meets_targets": {
            "gets_per_second": gets["sequential"] >= TARGETS["gets_per_second"],
            "list_1000_nodes_ms": listing["median_ms"] <= TARGETS["list_1000_nodes_ms"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run; not written)")
    args = parser.parse_args()
    result = asyncio.run(run(args.quick))
    text = json.dumps(result, indent=2)
    print(text)
    if not args.quick:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(text + "\n")


if __name__ == "__main__":
    main()
