"""`kubesim up [--port N] [--state-dir DIR]`: serve a simulated cluster until stopped, with a kubeconfig to use it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
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
    return parser


async def _serve(config: Config) -> None:
    cluster = Cluster(config)
    await cluster.start()
    assert config.state_dir is not None
    kubeconfig = config.state_dir / KUBECONFIG_FILE
    kubeconfig.write_text(kubeconfig_text(cluster.url))
    sys.stdout.write(f"kubesim serving at {cluster.url}\nexport KUBECONFIG={kubeconfig.resolve()}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await cluster.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="level=%(levelname)s logger=%(name)s msg=%(message)s")
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    config = Config(host=args.host, port=args.port, state_dir=state_dir, history_size=args.history)
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
