"""`gpu-operator`: `run` the operator (kopf), `render` a ClusterPolicy's manifests offline, print the `crd`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

import yaml

from gpu_operator import __version__
from gpu_operator.errors import OperatorError

log = logging.getLogger("gpu_operator")

DEFAULT_NAMESPACE = "gpu-operator"
LEASE_NAME = "53822513.nvidia.com"  # NVIDIA's leader election id


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace('"', "'")
        line = f'time={self.formatTime(record)} level={record.levelname.lower()} logger={record.name} msg="{message}"'
        if record.exc_info:
            line += " error=" + json.dumps(self.formatException(record.exc_info))
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kopf").setLevel(max(logging.INFO, root.level))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def ensure_crd(kube: Any) -> bool:
    """Apply this operator's CRD when the cluster has none or an older one; returns whether it wrote."""
    from gpu_operator.apply import CRDS_PATH, ApiStatusError
    from gpu_operator.crd import CRD_NAME, VERSION_ANNOTATION, crd_manifest

    path = f"{CRDS_PATH}/{CRD_NAME}"
    try:
        live = kube.get(path)
        if live is not None:
            theirs = ((live.get("metadata") or {}).get("annotations") or {}).get(VERSION_ANNOTATION, "0")
            if _version_tuple(theirs) >= _version_tuple(__version__):
                return False
        kube.apply(path, crd_manifest())
        log.info("applied CRD %s version %s", CRD_NAME, __version__)
        return True
    except ApiStatusError as exc:
        log.warning("cannot apply CRD %s: %s", CRD_NAME, exc)
        return False


def _api_client(kubeconfig: str | None) -> Any:
    from kubernetes import config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        from kubernetes import client

        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()  # type: ignore[no-untyped-call]


def _image_env() -> dict[str, str]:
    from gpu_operator.render import IMAGE_ENV

    return {name: os.environ[name] for name in IMAGE_ENV.values() if os.environ.get(name)}


def run(args: argparse.Namespace) -> int:
    import kopf

    from gpu_operator.apply import Kube
    from gpu_operator.controller import Controller, Settings
    from gpu_operator.handlers import build_registry
    from gpu_operator.leader import LeaderElector
    from gpu_operator.metrics import HttpEndpoints, default_metrics

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    kube = Kube(_api_client(args.kubeconfig))
    metrics = default_metrics()
    settings = Settings(namespace=args.namespace, image_env=_image_env(), resync_period=args.resync_period)
    controller = Controller(kube, settings, metrics)
    stop = threading.Event()
    lost = threading.Event()
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    elector = LeaderElector(
        kube,
        args.namespace,
        args.leader_election_id,
        identity,
        lease_duration=args.lease_duration,
        renew_period=max(0.5, args.lease_duration / 3),
        retry_period=max(0.2, args.lease_duration / 7),
    )
    worker = threading.Thread(target=controller.run, args=(stop,), name="reconciler", daemon=True)

    def healthy() -> bool:
        # a standby replica (worker not started) is healthy; a started one is healthy while its reconciler runs
        return not lost.is_set() and (worker.ident is None or worker.is_alive() or stop.is_set())

    def ready() -> bool:
        return (elector.is_leader or not args.leader_elect) and controller.reconciles > 0

    endpoints = HttpEndpoints(metrics, args.metrics_bind_address, args.health_probe_bind_address, healthy, ready)
    endpoints.start()
    if "health" in endpoints.ports:
        log.info("serving metrics=%s health=%s", endpoints.ports.get("metrics"), endpoints.ports.get("health"))

    def on_signal(signum: int, _: Any) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()
        controller.request("stop")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    if args.leader_elect:
        metrics.set("is_leader", 0)
        if not elector.acquire(stop):
            endpoints.stop()
            return 0
        metrics.set("is_leader", 1)

        def on_lost() -> None:
            lost.set()
            stop.set()
            controller.request("leadership lost")

        threading.Thread(target=elector.keep, args=(stop, on_lost), name="leader", daemon=True).start()
    if args.apply_crd:
        ensure_crd(kube)
    worker.start()
    registry = build_registry(controller)

    async def operate() -> None:
        # kopf waits on a threading.Event in an executor thread that asyncio.run would then wait for: bridge instead
        flag = asyncio.Event()
        loop = asyncio.get_running_loop()

        def bridge() -> None:
            stop.wait()
            with contextlib.suppress(RuntimeError):  # the loop may be gone already
                loop.call_soon_threadsafe(flag.set)

        threading.Thread(target=bridge, name="stop-bridge", daemon=True).start()

        @kopf.on.cleanup(registry=registry)
        async def release_stop_flag(**_: Any) -> None:
            # kopf takes SIGTERM itself; without this its waiter on `flag` is left pending and kopf waits 5 s for it
            stop.set()
            flag.set()

        await kopf.operator(registry=registry, standalone=True, namespaces=[args.namespace], stop_flag=flag)

    try:
        asyncio.run(operate())
    finally:
        log.info("stopping")
        stop.set()
        controller.request("stop")
        worker.join(10)
        if args.leader_elect and not lost.is_set():
            elector.release()
        endpoints.stop()
        log.info("stopped")
    return 1 if lost.is_set() else 0


def render_cmd(args: argparse.Namespace) -> int:
    from gpu_operator.policy import parse_spec
    from gpu_operator.render import ClusterFacts, Owner, render

    if args.filename == "-":
        text = sys.stdin.read()
    else:
        with open(args.filename, encoding="utf-8") as handle:
            text = handle.read()
    doc = yaml.safe_load(text) or {}
    meta = doc.get("metadata") or {}
    owner = Owner(meta["name"], meta["uid"]) if meta.get("name") and meta.get("uid") else None
    objects = render(parse_spec(doc.get("spec")), ClusterFacts(args.namespace, owner, _image_env()))
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0


def crd_cmd(_: argparse.Namespace) -> int:
    from gpu_operator.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpu-operator", description="NVIDIA GPU Operator MIG management (Python).")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))
    parser.add_argument("--log-format", choices=("kv", "json"), default=os.environ.get("LOG_FORMAT", "kv"))
    sub = parser.add_subparsers(dest="command", required=True)
    namespace = os.environ.get("OPERATOR_NAMESPACE") or DEFAULT_NAMESPACE

    r = sub.add_parser("run", help="run the operator")
    r.add_argument("--namespace", default=namespace, help="operand namespace (env OPERATOR_NAMESPACE)")
    r.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None)
    r.add_argument("--leader-elect", action="store_true", help="elect one active replica through a Lease")
    r.add_argument("--leader-election-id", default=LEASE_NAME)
    r.add_argument("--lease-duration", type=float, default=15.0, help="seconds")
    r.add_argument("--metrics-bind-address", default=":8080", help='"" disables')
    r.add_argument("--health-probe-bind-address", default=":8081", help='"" disables')
    r.add_argument("--resync-period", type=float, default=60.0, help="seconds between full reconciles")
    r.add_argument("--no-apply-crd", dest="apply_crd", action="store_false", help="never apply the CRD at start")
    r.set_defaults(func=run)

    d = sub.add_parser("render", help="print the manifests of a ClusterPolicy (images from *_IMAGE env vars)")
    d.add_argument("-f", "--filename", required=True, help="ClusterPolicy YAML, - for stdin")
    d.add_argument("--namespace", default=namespace)
    d.set_defaults(func=render_cmd)

    c = sub.add_parser("crd", help="print the ClusterPolicy CRD")
    c.set_defaults(func=crd_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    try:
        code: int = args.func(args)
    except OperatorError as exc:
        log.error("%s", exc)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
