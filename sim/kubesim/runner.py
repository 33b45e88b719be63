"""Running a container of this project's images as a local process: the pod's files, environment and arguments.

- Volumes live in a per-pod folder: ConfigMap, Secret, downward API and projected volumes are written in the
  kubelet's layout (timestamped folder, `..data` symlink swapped atomically, one symlink per key) and rewritten when
  their source changes; emptyDir is a folder; hostPath maps into the node's simulated root.
- env and envFrom are resolved (values, `$(VAR)` references, downward API fields, ConfigMap and Secret keys).
- Paths under a container's mountPaths in env values and arguments (whole value, or after `=`) are translated to the
  host folders behind them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubesim.store import GroupResource, Store

CONFIGMAPS: GroupResource = ("", "configmaps")
SECRETS: GroupResource = ("", "secrets")

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_FIELD = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes, unknown references stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def field_value(pod: Mapping[str, Any], path: str, host_ip: str = "", pod_ip: str = "") -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = _FIELD.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.hostIP": status.get("hostIP") or host_ip,
        "status.hostIPs": status.get("hostIP") or host_ip,
        "status.podIP": status.get("podIP") or pod_ip,
        "status.podIPs": status.get("podIP") or pod_ip,
    }
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("labels") or {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("annotations") or {}).items()))
    return str(simple.get(path) or "")


def _source_data(store: Store, gr: GroupResource, namespace: str, name: str) -> dict[str, bytes] | None:
    stored = store.get(gr, namespace, name)
    if stored is None:
        return None
    obj = stored.obj
    data: dict[str, bytes] = {}
    if gr == SECRETS:
        for key, value in (obj.get("data") or {}).items():
            data[key] = base64.b64decode(str(value))
        for key, value in (obj.get("stringData") or {}).items():
            data[key] = str(value).encode()
    else:
        for key, value in (obj.get("data") or {}).items():
            data[key] = str(value).encode()
        for key, value in (obj.get("binaryData") or {}).items():
            data[key] = base64.b64decode(str(value))
    return data


def _select(data: Mapping[str, bytes], items: list[dict[str, Any]] | None) -> dict[str, bytes]:
    if not items:
        return dict(data)
    return {str(i.get("path")): data[str(i.get("key"))] for i in items if str(i.get("key")) in data}


def _volume_uses(volume: Mapping[str, Any], gr: GroupResource, name: str) -> bool:
    key = "configMap" if gr == CONFIGMAPS else "secret"
    if key in volume:
        src = volume[key] or {}
        return (src.get("name") if key == "configMap" else src.get("secretName")) == name
    sources = (volume.get("projected") or {}).get("sources") or []
    return any(key in s and (s[key] or {}).get("name") == name for s in sources)


def write_atomic(directory: Path, files: Mapping[str, bytes]) -> None:
    """The kubelet's atomic writer: files in a timestamped folder, `..data` pointing at it, a symlink per entry."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for rel, content in files.items():
        target = stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    tmp = directory / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(stamp.name, tmp)
    os.replace(tmp, directory / "..data")
    top = {rel.split("/", 1)[0] for rel in files}
    for entry in directory.iterdir():
        if entry.name.startswith(".."):
            if entry.is_dir() and not entry.is_symlink() and entry.name != stamp.name:
                shutil.rmtree(entry, ignore_errors=True)
        elif entry.name not in top and entry.is_symlink():
            entry.unlink()
    for name in top:
        link = directory / name
        if not link.is_symlink():
            os.symlink(f"..data/{name}", link)


class PodFiles:
    """The host side of one pod: its volumes and its containers' own folders."""

    def __init__(
        self, root: Path, node_root: Path, pod: dict[str, Any], kubeconfig: Path, host_ip: str, pod_ip: str = ""
    ) -> None:
        self.root = root
        self.node_root = node_root
        self.pod = pod
        self.kubeconfig = kubeconfig
        self.host_ip = host_ip
        self.pod_ip = pod_ip or host_ip
        self.volumes: dict[str, Path] = {}
        self._written: dict[str, dict[str, bytes]] = {}
        root.mkdir(parents=True, exist_ok=True)

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"].get("namespace", ""))

    def container_root(self, container: str) -> Path:
        path = self.root / "containers" / container
        path.mkdir(parents=True, exist_ok=True)
        return path

    def host_path(self, path: str) -> Path:
        return self.node_root / path.lstrip("/")

    def materialise(self, store: Store) -> None:
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name"))
            if "hostPath" in volume:
                host = self.host_path(str(volume["hostPath"].get("path", "/")))
                kind = volume["hostPath"].get("type") or ""
                if kind in ("", "DirectoryOrCreate", "Directory") and not host.exists():
                    host.mkdir(parents=True, exist_ok=True)
                self.volumes[name] = host
                continue
            path = self.root / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            self.volumes[name] = path
            self._write_volume(store, volume)

    def missing(self, store: Store, containers: list[Mapping[str, Any]]) -> tuple[str, str] | None:
        """(waiting reason, message) while a ConfigMap or Secret the pod needs (not `optional`) is missing: the
        kubelet keeps such a pod's containers from starting until it appears."""
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            sources = [volume, *(((volume.get("projected") or {}).get("sources")) or [])]
            for source in sources:
                for key, gr, field in (("configMap", CONFIGMAPS, "name"), ("secret", SECRETS, "secretName")):
                    ref = source.get(key)
                    if ref is None or ref.get("optional"):
                        continue
                    name = str(ref.get(field if source is volume else "name") or ref.get("name"))
                    if store.get(gr, self.namespace, name) is None:
                        kind = "configmap" if gr == CONFIGMAPS else "secret"
                        return (
                            "ContainerCreating",
                            f'MountVolume.SetUp failed for volume "{volume.get("name")}" : {kind} "{name}" not found',
                        )
        for container in containers:
            for item in container.get("env") or []:
                ref = item.get("valueFrom") or {}
                for key, gr in (("configMapKeyRef", CONFIGMAPS), ("secretKeyRef", SECRETS)):
                    sel = ref.get(key)
                    if sel is None or sel.get("optional"):
                        continue
                    data = _source_data(store, gr, self.namespace, str(sel.get("name")))
                    kind = "configmap" if gr == CONFIGMAPS else "secret"
                    if data is None:
                        return "CreateContainerConfigError", f'{kind} "{sel.get("name")}" not found'
                    if str(sel.get("key")) not in data:
                        where = f"{kind.capitalize()} {self.namespace}/{sel.get('name')}"
                        return "CreateContainerConfigError", f"couldn't find key {sel.get('key')} in {where}"
            for source in container.get("envFrom") or []:
                for key, gr in (("configMapRef", CONFIGMAPS), ("secretRef", SECRETS)):
                    sel = source.get(key)
                    if sel is None or sel.get("optional"):
                        continue
                    if store.get(gr, self.namespace, str(sel.get("name"))) is None:
                        kind = "configmap" if gr == CONFIGMAPS else "secret"
                        return "CreateContainerConfigError", f'{kind} "{sel.get("name")}" not found'
        return None

    def _contents(self, store: Store, volume: Mapping[str, Any]) -> dict[str, bytes] | None:
        if "configMap" in volume or "secret" in volume:
            is_cm = "configMap" in volume
            src = volume["configMap" if is_cm else "secret"] or {}
            name = src.get("name") if is_cm else src.get("secretName")
            data = _source_data(store, CONFIGMAPS if is_cm else SECRETS, self.namespace, str(name))
            return _select(data or {}, src.get("items"))
        if "downwardAPI" in volume:
            return self._downward((volume["downwardAPI"] or {}).get("items") or [])
        if "projected" in volume:
            files: dict[str, bytes] = {}
            for source in (volume["projected"] or {}).get("sources") or []:
                if "configMap" in source or "secret" in source:
                    files.update(self._contents(store, source) or {})
                elif "downwardAPI" in source:
                    files.update(self._downward((source["downwardAPI"] or {}).get("items") or []))
                elif "serviceAccountToken" in source:
                    files[str(source["serviceAccountToken"].get("path", "token"))] = b"kubesim"
            return files
        return None

    def _downward(self, items: list[dict[str, Any]]) -> dict[str, bytes]:
        files = {}
        for item in items:
            ref = item.get("fieldRef") or {}
            if ref:
                files[str(item.get("path"))] = field_value(
                    self.pod, str(ref.get("fieldPath", "")), self.host_ip, self.pod_ip
                ).encode()
        return files

    def _write_volume(self, store: Store, volume: Mapping[str, Any]) -> bool:
        files = self._contents(store, volume)
        name = str(volume.get("name"))
        if files is None or self._written.get(name) == files:
            return False
        write_atomic(self.volumes[name], files)
        self._written[name] = files
        return True

    def refresh(self, store: Store, gr: GroupResource, name: str) -> bool:
        """Rewrite the volumes backed by this ConfigMap or Secret (what the kubelet's sync does); True if changed."""
        changed = False
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            if str(volume.get("name")) in self.volumes and _volume_uses(volume, gr, name):
                changed |= self._write_volume(store, volume)
        return changed

    # ------------------------------------------------------------ containers

    def mounts(self, container: Mapping[str, Any]) -> list[tuple[str, Path]]:
        result = []
        for mount in container.get("volumeMounts") or []:
            host = self.volumes.get(str(mount.get("name")))
            if host is None:
                continue
            if mount.get("subPath"):
                host = host / str(mount["subPath"])
            result.append((str(mount.get("mountPath", "")).rstrip("/") or "/", host))
        result.sort(key=lambda m: len(m[0]), reverse=True)
        return result

    def translate(self, text: str, mounts: list[tuple[str, Path]]) -> str:
        """A path under a mountPath (the whole value, or what follows `=`) becomes the host folder behind it."""
        head, sep, tail = ("", "", text)
        if not text.startswith("/") and "=" in text:
            head, sep, tail = text.partition("=")
        for mount_path, host in mounts:
            if mount_path == "/":
                continue
            if tail == mount_path or tail.startswith(mount_path + "/"):
                return head + sep + str(host) + tail[len(mount_path) :]
        return text

    def environment(self, store: Store, container: Mapping[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = str(source.get("prefix", ""))
            if "configMapRef" in source:
                data = _source_data(store, CONFIGMAPS, self.namespace, str(source["configMapRef"].get("name")))
            else:
                data = _source_data(store, SECRETS, self.namespace, str((source.get("secretRef") or {}).get("name")))
            for key, raw_value in (data or {}).items():
                env[prefix + key] = raw_value.decode(errors="replace")
        for item in container.get("env") or []:
            name = str(item.get("name"))
            if "valueFrom" not in item:
                env[name] = expand(str(item.get("value", "")), env)
                continue
            ref = item["valueFrom"] or {}
            value: str | None = None
            if "fieldRef" in ref:
                value = field_value(self.pod, str(ref["fieldRef"].get("fieldPath", "")), self.host_ip, self.pod_ip)
            elif "configMapKeyRef" in ref or "secretKeyRef" in ref:
                is_cm = "configMapKeyRef" in ref
                sel = ref["configMapKeyRef" if is_cm else "secretKeyRef"]
                data = _source_data(store, CONFIGMAPS if is_cm else SECRETS, self.namespace, str(sel.get("name")))
                raw = (data or {}).get(str(sel.get("key")))
                value = raw.decode(errors="replace") if raw is not None else None
            elif "resourceFieldRef" in ref:
                res = ref["resourceFieldRef"].get("resource", "")
                group, _, kind = str(res).partition(".")
                value = str(((container.get("resources") or {}).get(group) or {}).get(kind, "0"))
            if value is not None:
                env[name] = value
        mounts = self.mounts(container)
        return {k: self.translate(v, mounts) for k, v in env.items()}

    def argv(self, container: Mapping[str, Any], env: Mapping[str, str], entrypoint: tuple[str, ...]) -> list[str]:
        mounts = self.mounts(container)
        command = [str(c) for c in container.get("command") or entrypoint]
        args = [str(a) for a in container.get("args") or []]
        return [self.translate(expand(a, env), mounts) for a in [*command, *args]]


# This project's console scripts, runnable as modules when the environment has no script for them.
MODULES = {
    "mig-manager": "mig_manager.agent",
    "gpu-operator": "gpu_operator",
    "kubesim": "kubesim",
}


def resolve_command(argv: list[str]) -> list[str]:
    """A command of this project's images: `python` is this interpreter; console scripts come from its bin folder,
    then PATH, then `python -m <module>` for this project's own scripts."""
    name, rest = argv[0], argv[1:]
    if name in ("python", "python3", "python3.11"):
        return [sys.executable, *rest]
    if "/" in name:
        return argv
    local = Path(sys.executable).parent / name
    if local.exists():
        return [str(local), *rest]
    found = shutil.which(name)
    if found:
        return [found, *rest]
    if name in MODULES:
        return [sys.executable, "-m", MODULES[name], *rest]
    return argv


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the thread that started it ends, so a kubesim that is killed (or a test
    run that is interrupted) leaves no container processes behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Process:
    """One container as a local process in its own session; output goes to `on_line`."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, on_line: Callable[[str], None]) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.on_line = on_line
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self) -> int:
        argv = resolve_command(self.argv) if self.argv else []
        if not argv:
            self.on_line("kubesim: the container has no command and its image no entrypoint")
            return 127
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                cwd=str(self.cwd),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            self.on_line(f"kubesim: cannot start {argv[0]}: {exc}")
            return 128
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            self.on_line(line.decode(errors="replace").rstrip("\n"))
        code = await self.proc.wait()
        return 128 - code if code < 0 else code  # killed by a signal: 128 + its number, as container runtimes report

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    async def terminate(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after the grace period (the whole process group)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), max(grace, 0.0))
        except TimeoutError:
            self.signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5.0)
