"""Shared helpers of the chart tests: the real helm from `.tools/bin`, rendering, and a checker of the ClusterPolicy
against the CRD's openAPIV3Schema (converted to JSON Schema, validated with jsonschema)."""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gpu-operator"
CRD_FILE = ROOT / "crds" / "nvidia.com_clusterpolicies.yaml"
CHART_CRD_FILE = CHART / "crds" / "nvidia.com_clusterpolicies.yaml"
HELM = Path(os.environ.get("KUBESIM_TOOLS", ROOT / ".tools" / "bin")) / "helm"
NAMESPACE = "gpu-operator"
KUBE_VERSIONS = ("1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0")


def need_helm() -> None:
    if not HELM.exists():
        pytest.skip(f"{HELM} is missing: run `make tools`")


def helm(*args: str, home: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real helm offline, with HOME and helm's folders in `home` (or a throw-away one under /tmp)."""
    need_helm()
    env = dict(os.environ)
    if home is not None:
        env.update(
            HOME=str(home),
            HELM_CACHE_HOME=str(home / "cache"),
            HELM_CONFIG_HOME=str(home / "config"),
            HELM_DATA_HOME=str(home / "data"),
        )
    env.pop("KUBECONFIG", None)
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def template(
    *sets: str,
    values: Mapping[str, Any] | None = None,
    kube_version: str | None = None,
    tmp: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart in the release namespace; `values` go through a values file."""
    args = ["template", "gpu", str(CHART), "-n", NAMESPACE]
    if kube_version:
        args += ["--kube-version", kube_version]
    if values is not None:
        assert tmp is not None, "a values file needs a folder"
        path = tmp / f"values-{uuid.uuid4().hex}.yaml"
        path.write_text(yaml.safe_dump(dict(values)))
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return helm(*args, check=check)


def render(*sets: str, values: Mapping[str, Any] | None = None, tmp: Path | None = None) -> list[dict[str, Any]]:
    out = template(*sets, values=values, tmp=tmp).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: Iterable[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [dict(d) for d in docs if d.get("kind") == kind]


def one(docs: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------------------------------------------------------------
# The CRD's structural schema as JSON Schema
# ---------------------------------------------------------------------------------------------------------------------

_DROP = {"description", "default", "example", "externalDocs", "nullable", "format"}


def openapi_to_jsonschema(node: Mapping[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema as JSON Schema, with the API server's semantics for its extensions:
    `nullable` admits null, `x-kubernetes-int-or-string` admits integers and strings, and an object with `properties`
    rejects unknown fields unless `x-kubernetes-preserve-unknown-fields` (the server would prune them silently;
    for a chart, an unknown field is a mistake either way)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, Mapping)) or key == "not":
            out[key] = openapi_to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list):
            out["type"] = [*kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if (
        "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def clusterpolicy_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = openapi_to_jsonschema(version["schema"]["openAPIV3Schema"])
    # metadata is implicit in every custom resource
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return schema


def clusterpolicy_errors(doc: Mapping[str, Any]) -> list[str]:
    """Every way `doc` breaks the CRD's schema, as `path: message`."""
    problems = []
    if doc.get("apiVersion") != "nvidia.com/v1" or doc.get("kind") != "ClusterPolicy":
        problems.append(f"not a nvidia.com/v1 ClusterPolicy: {doc.get('apiVersion')} {doc.get('kind')}")
    validator = jsonschema.Draft202012Validator(clusterpolicy_schema())
    for error in validator.iter_errors(doc):
        path = ".".join(str(p) for p in error.absolute_path) or "<root>"
        problems.append(f"{path}: {error.message}")
    return problems
