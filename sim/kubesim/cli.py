"""`kubesim up [--topology FILE] [--detach]`: serve a simulated GPU cluster with a kubeconfig to use it;
`kubesim down` stops a detached one; `kubesim reboot NODE` reboots a simulated node."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kubesim.server import KUBECONFIG_FILE, Cluster, Config, kubeconfig_text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubesim", description="A simulated Kubernetes API server.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="serve until interrupted; writes DIR/kubeconfig")
    up.add_argument("--port", type=int, default=6443, help="port to listen on (0: any free port; default 6443)")
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".kubesim"),
        help="where the kubeconfig and the persisted state go (default .kubesim)",
    )
    up.add_argument("--history", type=int, default=10_000, help="watch history kept for resuming (events)")
    up.add_argument("--log-level", default="INFO")
    up.add_argument(
        "--topology",
        default="default",
        help="the simulated nodes: a topology file, `default` (8x H100, 4x A100 40GB + 4x A100 80GB, 2x A30 "
        "passthrough, a node without GPUs) or `none` (the API server alone)",
    )
    up.add_argument("--reboot-seconds", type=float, default=3.0, help="how long a rebooting node stays NotReady")
    up.add_argument("--detach", action="store_true", help="run in the background (stop it with `kubesim down`)")
    down = sub.add_parser("down", help="stop a kubesim started with --detach")
    down.add_argument("--state-dir", type=Path, default=Path(".kubesim"))
    reboot = sub.add_parser("reboot", help="reboot a simulated node")
    reboot.add_argument("node")
    reboot.add_argument("--state-dir", type=Path, default=Path(".kubesim"))
    return parser


PID_FILE = "kubesim.pid"
LOG_FILE = "kubesim.log"
URL_FILE = "url"


def _hints(config: Config) -> str:
    if config.topology is None:
        return ""
    return "kubectl get nodes -L nvidia.com/gpu.product,nvidia.com/mig.config.state\n"


async def _serve(config: Config) -> None:
    cluster = Cluster(config)
    await cluster.start()
    assert config.state_dir is not None
    kubeconfig = config.state_dir / KUBECONFIG_FILE
    kubeconfig.write_text(kubeconfig_text(cluster.url))
    (config.state_dir / URL_FILE).write_text(cluster.url)
    sys.stdout.write(f"kubesim serving at {cluster.url}\nexport KUBECONFIG={kubeconfig.resolve()}\n{_hints(config)}")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await cluster.stop()


def _detach(argv: list[str], state_dir: Path) -> int:
    """Start `kubesim up` in its own session, wait until it serves, print what it printed, and leave it running."""
    log_path = state_dir / LOG_FILE
    child_args = [a for a in argv if a != "--detach"]
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubesim", *child_args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (state_dir / PID_FILE).write_text(str(proc.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if "export KUBECONFIG=" in text:
            lines = [line for line in text.splitlines() if not line.startswith("level=")]
            sys.stdout.write("\n".join(lines[:3]) + f"\nstop it with: kubesim down --state-dir {state_dir}\n")
            return 0
        if proc.poll() is not None:
            sys.stderr.write(text)
            return 1
        time.sleep(0.05)
    sys.stderr.write(f"kubesim did not start within 60s; see {log_path}\n")
    return 1


def _down(state_dir: Path) -> int:
    pid_file = state_dir / PID_FILE
    if not pid_file.exists():
        sys.stderr.write(f"no detached kubesim in {state_dir}\n")
        return 1
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        return 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        sys.stderr.write(f"kubesim (pid {pid}) did not stop within 30s\n")
        return 1
    pid_file.unlink()
    sys.stdout.write("kubesim stopped\n")
    return 0


def _reboot(state_dir: Path, node: str) -> int:
    url = (state_dir / URL_FILE).read_text().strip()
    request = urllib.request.Request(f"{url}/kubesim/nodes/{node}/reboot", method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            sys.stdout.write(json.dumps(json.loads(resp.read())) + "\n")
    except OSError as exc:
        sys.stderr.write(f"reboot {node}: {exc}\n")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(raw)
    state_dir: Path = args.state_dir
    if args.command == "down":
        return _down(state_dir)
    if args.command == "reboot":
        return _reboot(state_dir, args.node)
    state_dir.mkdir(parents=True, exist_ok=True)
    if args.detach:
        return _detach(raw, state_dir)
    logging.basicConfig(level=args.log_level.upper(), format="level=%(levelname)s logger=%(name)s msg=%(message)s")
    topology = None if args.topology == "none" else args.topology
    config = Config(
        host=args.host,
        port=args.port,
        state_dir=state_dir,
        history_size=args.history,
        topology=topology,
        reboot_seconds=args.reboot_seconds,
    )
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
