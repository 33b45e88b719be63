"""`helm lint --strict`, the chart's CRD copy, and bad values failing at `helm template` with a message naming the
value (values.schema.json first, then the template-side checks of `templates/validations.yaml`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, CHART_CRD_FILE, CRD_FILE, ROOT, helm, template

from mig_manager.errors import SpecError
from mig_manager.spec import load_spec


def test_helm_lint_strict() -> None:
    proc = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in proc.stdout


def test_helm_lint_strict_with_every_option(tmp_path: Path) -> None:
    values = {
        "mig": {"strategy": "mixed"},
        "migManager": {
            "env": [{"name": "WITH_REBOOT", "value": "true"}],
            "config": {"create": True, "name": "custom", "data": {"config.yaml": VALID}},
            "gpuClientsConfig": {"create": True, "name": "clients", "data": {"clients.yaml": "version: v1\n"}},
        },
        "driver": {"enabled": False},
        "admissionPolicy": {"enabled": True},
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    proc = helm("lint", "--strict", str(CHART), "-f", str(path))
    assert "0 chart(s) failed" in proc.stdout


def test_chart_crd_is_a_byte_identical_copy_of_the_generated_crd() -> None:
    assert CHART_CRD_FILE.read_bytes() == CRD_FILE.read_bytes(), (
        "charts/gpu-operator/crds/ is stale: cp crds/nvidia.com_clusterpolicies.yaml charts/gpu-operator/crds/"
    )
    assert sorted(p.name for p in CHART_CRD_FILE.parent.iterdir()) == [CRD_FILE.name]


VALID = """version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  five-1g-one-2g:
    - device-filter: ["0x233010DE", "0x233110DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 5
        "2g.20gb": 1
"""


def custom(config: Any) -> dict[str, Any]:
    return {"migManager": {"config": {"create": True, "name": "custom", "data": {"config.yaml": config}}}}


# (sets, values, words every one of which the error must contain)
BAD: dict[str, tuple[list[str], dict[str, Any] | None, list[str]]] = {
    "strategy": (["mig.strategy=triple"], None, ["/mig/strategy", "'none', 'single', 'mixed'"]),
    "config-default": (["migManager.config.default=all-enabled"], None, ["/migManager/config/default"]),
    "data-without-config-yaml": (
        ["migManager.config.create=true", "migManager.config.name=c", "migManager.config.data.other=x"],
        None,
        ["/migManager/config/data", "config.yaml"],
    ),
    "data-without-name": (
        [],
        {"migManager": {"config": {"create": True, "data": {"config.yaml": VALID}}}},
        ["/migManager/config/name"],
    ),
    "config-name-not-a-name": (["migManager.config.name=Not_A_Name"], None, ["/migManager/config/name"]),
    "config-unknown-key": (["migManager.config.dat=x"], None, ["/migManager/config", "dat"]),
    "config-default-name-created": (
        [],
        {
            "migManager": {
                "config": {"create": True, "name": "default-mig-parted-config", "data": {"config.yaml": VALID}}
            }
        },
        ["migManager.config.name", "default-mig-parted-config"],
    ),
    "config-not-yaml": (
        [],
        custom("version: v1\nmig-configs: [unclosed\n"),
        ["migManager.config.data.config.yaml", "not valid YAML"],
    ),
    "config-wrong-version": (
        [],
        custom(VALID.replace("version: v1", "version: v2")),
        ["migManager.config.data.config.yaml", 'version must be "v1"'],
    ),
    "config-as-a-map": (
        [],
        custom(yaml.safe_load(VALID)),
        ["/migManager/config/data/config.yaml", "want string"],
    ),
    "config-bad-profile": (
        [],
        custom(VALID.replace('"2g.20gb"', '"2x.20gb"')),
        ["migManager.config.data.config.yaml", "mig-configs.five-1g-one-2g[0]", '"2x.20gb" is not a MIG profile name'],
    ),
    "config-enabled-without-devices": (
        [],
        custom("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"),
        ["migManager.config.data.config.yaml", "mig-configs.a[0]", "mig-devices is required"],
    ),
    "config-empty": ([], custom(""), ["migManager.config.data.config.yaml", 'version must be "v1"']),
    "image-mig-manager": (["migManager.image="], None, ["/migManager/image"]),
    "image-operator": (["operator.image="], None, ["/operator/image"]),
    "image-device-plugin": (["devicePlugin.image="], None, ["/devicePlugin/image"]),
    "image-gfd": (["gfd.image="], None, ["/gfd/image"]),
    "image-dcgm-exporter": (["dcgmExporter.image="], None, ["/dcgmExporter/image"]),
    "image-version-missing": (["devicePlugin.version="], None, ["devicePlugin.version must be set"]),
    "image-repository-missing": (["gfd.repository="], None, ["gfd.repository must be set"]),
    "pull-policy": (["migManager.imagePullPolicy=Sometimes"], None, ["/migManager/imagePullPolicy"]),
    "env-without-name": (["migManager.env[0].value=x"], None, ["/migManager/env/0", "name"]),
    "env-value-from": (
        [],
        {"migManager": {"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}},
        ["/migManager/env/0", "valueFrom"],
    ),
    "replicas": (["operator.replicas=0"], None, ["/operator/replicas"]),
    "update-strategy": (["daemonsets.updateStrategy=Recreate"], None, ["/daemonsets/updateStrategy"]),
    "max-unavailable": (
        ["daemonsets.rollingUpdate.maxUnavailable=one"],
        None,
        ["/daemonsets/rollingUpdate/maxUnavailable"],
    ),
    "enabled-not-bool": (["migManager.enabled=maybe"], None, ["/migManager/enabled"]),
    "clients-without-key": (
        ["migManager.gpuClientsConfig.create=true", "migManager.gpuClientsConfig.name=c"],
        {"migManager": {"gpuClientsConfig": {"data": {"other": "x"}}}},
        ["/migManager/gpuClientsConfig/data", "clients.yaml"],
    ),
    "clients-bad": (
        [],
        {
            "migManager": {
                "gpuClientsConfig": {
                    "create": True,
                    "name": "c",
                    "data": {"clients.yaml": "version: v1\nsystemd-services: nvsm.service\n"},
                }
            }
        },
        ["migManager.gpuClientsConfig.data.clients.yaml", "systemd-services must be a list"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_values_fail_naming_the_value(case: str, tmp_path: Path) -> None:
    sets, values, words = BAD[case]
    proc = template(*sets, values=values, tmp=tmp_path, check=False)
    assert proc.returncode != 0, f"{case}: rendered although it should not:\n{proc.stdout[:2000]}"
    for word in words:
        assert word in proc.stderr, f"{case}: {word!r} not in the error:\n{proc.stderr}"


# The template-side check of mig-parted configs agrees with the node agent's parser (mig_manager.spec) on what can
# load at all. (The agent also checks the geometry against the GPUs, which no template can.)
def entry(*lines: str) -> str:
    """A config `a` with one entry made of `lines`."""
    return "version: v1\nmig-configs:\n  a:\n    - " + "\n      ".join(lines) + "\n"


DISABLED = ("devices: all", "mig-enabled: false")
ENABLED = ("devices: all", "mig-enabled: true")
CORPUS = {
    "valid": VALID,
    "valid-attributes": entry(
        "devices: [0, 1]", "mig-enabled: true", "mig-devices: {1g.10gb+me: 1, 1c.2g.20gb: 2, 1g.24gb-me: 1}"
    ),
    "valid-enabled-no-instances": entry(*ENABLED, "mig-devices: {}"),
    "valid-null-filter": entry("device-filter: ~", *DISABLED),
    "valid-odd-filter": entry("device-filter: nonsense", *DISABLED),
    "no-version": "mig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n",
    "numeric-version": entry(*DISABLED).replace("version: v1", "version: 1"),
    "a-list": "- a\n- b\n",
    "no-configs": "version: v1\nmig-configs: {}\n",
    "configs-as-list": "version: v1\nmig-configs:\n  - a\n",
    "no-entries": "version: v1\nmig-configs:\n  a: []\n",
    "entry-not-a-map": "version: v1\nmig-configs:\n  a:\n    - 5\n",
    "unknown-top-key": "foo: 1\n" + entry(*DISABLED),
    "unknown-entry-key": entry(*DISABLED, "foo: 1"),
    "devices-some": entry("devices: some", "mig-enabled: false"),
    "no-devices": entry("mig-enabled: false"),
    "no-mig-enabled": entry("devices: all"),
    "mig-enabled-string": entry("devices: all", "mig-enabled: 'yes'"),
    "null-mig-devices": entry(*ENABLED, "mig-devices: ~"),
    "devices-when-disabled": entry(*DISABLED, "mig-devices: {1g.10gb: 1}"),
    "bad-attribute": entry(*ENABLED, "mig-devices: {1g.10gb+: 1}"),
    "negative-count": entry(*ENABLED, "mig-devices: {1g.10gb: -1}"),
    "fractional-count": entry(*ENABLED, "mig-devices: {1g.10gb: 1.5}"),
    "zero-counts": entry(*ENABLED, "mig-devices: {1g.10gb: 0}"),
    "unquoted-filter": entry("device-filter: 5", *DISABLED),
}


def _agent_accepts(text: str) -> bool:
    try:
        load_spec(text)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("case", list(CORPUS))
def test_template_check_agrees_with_the_agent_parser(case: str, tmp_path: Path) -> None:
    text = CORPUS[case]
    proc = template(values=custom(text), tmp=tmp_path, check=False)
    expected = _agent_accepts(text)
    assert expected == case.startswith("valid"), f"{case}: the corpus is mislabelled"
    if expected:
        assert proc.returncode == 0, f"{case}: the agent accepts it, the chart does not:\n{proc.stderr}"
    else:
        assert proc.returncode != 0, f"{case}: the agent rejects it, the chart renders it"
        assert "migManager.config.data.config.yaml" in proc.stderr, proc.stderr


def _leaves(values: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of values.yaml down to the sections' keys (not into lists, free maps or resources)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and value and key not in FREE_MAPS:
            yield from _leaves(value, f"{path}.")


FREE_MAPS = {"resources", "labels", "annotations", "nodeSelector", "affinity", "data"}


def _schema_at(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in path.split("."):
        assert node is not None
        while "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        node = (node.get("properties") or {}).get(part)
        if node is None:
            return None
    return node


SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.mark.parametrize("path", list(_leaves(VALUES)))
def test_every_value_is_in_the_schema(path: str) -> None:
    assert _schema_at(SCHEMA, path) is not None, f"{path} is not in values.schema.json"


DOCS = (ROOT / "docs" / "helm.md").read_text()
LEAVES = [p for p in _leaves(VALUES) if not any(other.startswith(p + ".") for other in _leaves(VALUES))]


@pytest.mark.parametrize("path", LEAVES)
def test_every_value_is_documented(path: str) -> None:
    parts = path.split(".")
    suffixes = [".".join(parts[i:]) for i in range(len(parts))]
    assert any(f"`{suffix}`" in DOCS for suffix in suffixes), f"{path} is not documented in docs/helm.md"


# A values file in NVIDIA's shape (deployments/gpu-operator/values.yaml, the keys users copy), trimmed.
NVIDIA_VALUES = """
nfd: {enabled: true}
psa: {enabled: false}
cdi: {enabled: true}
toolkit: {enabled: false}
validator: {repository: nvcr.io/nvidia, image: gpu-operator, imagePullPolicy: IfNotPresent}
operator:
  repository: nvcr.io/nvidia
  image: gpu-operator
  imagePullPolicy: IfNotPresent
  priorityClassName: system-node-critical
  runtimeClass: nvidia
  use_ocp_driver_toolkit: false
  cleanupCRD: false
  upgradeCRD: true
  annotations: {openshift.io/scc: restricted-readonly}
  logging: {timeEncoding: epoch, level: info, develMode: false}
  resources: {limits: {cpu: 500m, memory: 350Mi}, requests: {cpu: 200m, memory: 100Mi}}
mig:
  strategy: single
daemonsets:
  labels: {}
  annotations: {}
  priorityClassName: system-node-critical
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  updateStrategy: RollingUpdate
  rollingUpdate: {maxUnavailable: "1"}
driver:
  enabled: false
  nvidiaDriverCRD: {enabled: false, deployDefaultCR: true, driverType: gpu, nodeSelector: {}}
  kernelModuleType: auto
  usePrecompiled: false
  repository: nvcr.io/nvidia
  image: driver
  version: "595.91.07"
devicePlugin:
  enabled: true
  repository: nvcr.io/nvidia
  image: k8s-device-plugin
  version: v0.20.0
  imagePullPolicy: IfNotPresent
  imagePullSecrets: []
  env: []
  args: []
  resources: {}
gfd:
  enabled: true
  repository: nvcr.io/nvidia
  image: k8s-device-plugin
  version: v0.20.0
dcgmExporter:
  enabled: true
dcgm: {enabled: false}
migManager:
  enabled: true
  repository: nvcr.io/nvidia/cloud-native
  image: k8s-mig-manager
  version: v0.15.0
  imagePullPolicy: IfNotPresent
  imagePullSecrets: []
  env: [{name: WITH_REBOOT, value: "true"}]
  resources: {}
  config: {default: "all-disabled", create: false, name: "", data: {}}
  gpuClientsConfig: {name: ""}
  hostNetwork: false
nodeStatusExporter: {enabled: false}
"""


def test_nvidia_values_file_names_the_images_it_cannot_run(tmp_path: Path) -> None:
    values = yaml.safe_load(NVIDIA_VALUES)
    proc = template(values=values, tmp=tmp_path, check=False)
    assert proc.returncode != 0
    assert "operator.repository/operator.image name NVIDIA's Go operator" in proc.stderr
    del values["operator"]["repository"], values["operator"]["image"]
    proc = template(values=values, tmp=tmp_path, check=False)
    assert proc.returncode != 0
    assert "migManager.repository/migManager.image name NVIDIA's k8s-mig-manager" in proc.stderr


def test_nvidia_values_file_works_with_this_projects_images(tmp_path: Path) -> None:
    values = yaml.safe_load(NVIDIA_VALUES)
    for key in ("repository", "image"):
        del values["operator"][key]
    for key in ("repository", "image", "version"):
        del values["migManager"][key]
    path = tmp_path / "nvidia.yaml"
    path.write_text(yaml.safe_dump(values))
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART), "-f", str(path)).stdout
    docs = [d for d in yaml.safe_load_all(template(values=values, tmp=tmp_path).stdout) if d]
    (policy,) = [d for d in docs if d["kind"] == "ClusterPolicy"]
    spec = policy["spec"]
    assert spec["driver"] == {"enabled": False}
    assert spec["operator"] == {"runtimeClass": "nvidia"}
    assert spec["migManager"]["env"] == [{"name": "WITH_REBOOT", "value": "true"}]
    assert spec["migManager"]["image"] == "mig-manager"
    assert spec["dcgmExporter"]["image"] == "dcgm-exporter"  # keys NVIDIA's file leaves out keep this chart's defaults
    notes = helm(
        "install", "gpu", str(CHART), "-n", "gpu-operator", "--dry-run=client", "-f", str(path), home=tmp_path
    ).stdout
    ignored = notes[notes.index("ignored: ") :].split(".\n", 1)[0]
    for key in ("cdi", "dcgm", "nfd", "nodeStatusExporter", "psa", "toolkit", "validator", "driver.version"):
        assert key in ignored, key
    for key in ("operator.cleanupCRD", "operator.upgradeCRD", "operator.use_ocp_driver_toolkit"):
        assert key in ignored, key
    assert "migManager" not in ignored and "mig," not in ignored
