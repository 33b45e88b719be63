"""Pydantic models of the ClusterPolicy (`nvidia.com/v1`), with NVIDIA's JSON field names.

Only the MIG-relevant subset is modelled. Every modelled object except the leaves (env vars, tolerations, resources,
conditions) keeps fields it does not know, so NVIDIA's examples apply unchanged; `unsupported_fields` lists them for
the ClusterPolicy's conditions. The CRD (`gpu_operator.crd`) is generated from these models: a pydantic default that is
not None becomes the CRD default, a `Literal` becomes an enum.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from gpu_operator.errors import PolicyError

GROUP = "nvidia.com"
VERSION = "v1"
KIND = "ClusterPolicy"
PLURAL = "clusterpolicies"
SINGULAR = "clusterpolicy"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_MIG_CONFIG_MAP = "default-mig-parted-config"
DEFAULT_GPU_CLIENTS_CONFIG_MAP = "default-gpu-clients"

MigStrategy = Literal["none", "single", "mixed"]
State = Literal["ignored", "ready", "notReady"]


class _Open(BaseModel):
    """A ClusterPolicy object: camelCase keys, unknown keys kept (reported by `unsupported_fields`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)


class _Leaf(BaseModel):
    """A closed object: unknown keys are pruned by the API server, so they are ignored here too."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class EnvVar(_Leaf):
    """An environment variable; as in NVIDIA's CRD there is no `valueFrom`."""

    name: str = Field(min_length=1, description="Name of the environment variable.")
    value: str | None = Field(default=None, description="Value of the environment variable.")


class Toleration(_Leaf):
    """A pod toleration, as in core/v1."""

    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


class ResourceRequirements(_Leaf):
    """Compute resources of the component's containers (quantities as strings or integers)."""

    limits: dict[str, int | str] | None = None
    requests: dict[str, int | str] | None = None


class ComponentSpec(_Open):
    """Fields shared by NVIDIA's component specs: enablement, image, pull settings, resources, args and env."""

    enabled: bool | None = Field(
        default=None, description="Enabled indicates if deployment of this component is enabled (default true)."
    )
    repository: str | None = Field(default=None, description="Image repository.")
    image: str | None = Field(
        default=None, description="Image name; alone (without repository and version) a full reference."
    )
    version: str | None = Field(default=None, description="Image tag, or a digest starting with sha256:.")
    image_pull_policy: Literal["Always", "Never", "IfNotPresent"] | None = Field(
        default=None, description="Image pull policy (Always, Never, IfNotPresent)."
    )
    image_pull_secrets: list[str] | None = Field(default=None, description="Image pull secrets.")
    resources: ResourceRequirements | None = Field(default=None, description="Resources of the component's containers.")
    args: list[str] | None = Field(default=None, description="Arguments of the main container.")
    env: list[EnvVar] | None = Field(default=None, description="Environment variables of the main container.")

    def is_enabled(self) -> bool:
        return self.enabled is not False


class MigPartedConfigSpec(_Open):
    """The MIG configuration: a custom ConfigMap, and the config a MIG-capable node gets when it has none."""

    name: str | None = Field(
        default=None,
        description="ConfigMap name (key config.yaml). If not specified, the default configuration is used.",
    )
    default: Literal["all-disabled", ""] = Field(
        default="all-disabled",
        description='Config label given to MIG-capable nodes without nvidia.com/mig.config; "" means do not label.',
    )


class GpuClientsConfigSpec(_Open):
    """The ConfigMap (key clients.yaml) listing host GPU clients to stop around a MIG change."""

    name: str | None = Field(default=None, description="ConfigMap name; default-gpu-clients when empty.")


class MigManagerSpec(ComponentSpec):
    """The MIG manager (this project's node agent)."""

    config: MigPartedConfigSpec | None = Field(default=None, description="MIG configuration.")
    gpu_clients_config: GpuClientsConfigSpec | None = Field(default=None, description="GPU clients configuration.")
    host_network: bool | None = Field(default=None, description="Run the MIG manager in the host network namespace.")

    def custom_config_name(self) -> str | None:
        """The custom MIG ConfigMap, or None when the operator's default config is used.

        Naming `default-mig-parted-config` is not custom: the operator owns and renders that ConfigMap.
        """
        name = self.config.name if self.config is not None else None
        if not name or name == DEFAULT_MIG_CONFIG_MAP:
            return None
        return name

    def config_map_name(self) -> str:
        return self.custom_config_name() or DEFAULT_MIG_CONFIG_MAP

    def gpu_clients_config_map(self) -> str:
        name = self.gpu_clients_config.name if self.gpu_clients_config is not None else None
        return name or DEFAULT_GPU_CLIENTS_CONFIG_MAP

    def default_config_label(self) -> str:
        """The `nvidia.com/mig.config` value for unlabelled MIG-capable nodes; "" means none.

        As in NVIDIA's operator, the default applies only when `config` is present (the CRD default lives inside it),
        so a hand-written policy without `config` never makes the agent reconfigure a GPU.
        """
        return self.config.default if self.config is not None else ""


class MigSpec(_Open):
    strategy: MigStrategy | None = Field(
        default=None, description="MIG strategy exposed by the device plugin and GFD: none, single or mixed."
    )


class DriverSpec(_Open):
    enabled: bool | None = Field(
        default=None, description="Whether the operator manages the driver; false means a driver installed on the host."
    )

    def is_enabled(self) -> bool:
        return self.enabled is not False


class RollingUpdateSpec(_Leaf):
    max_unavailable: str | None = Field(
        default=None, pattern=r"^(?:[0-9]+|[0-9]+%)$", description='Maximum unavailable pods: "N" or "N%".'
    )


class DaemonsetsSpec(_Open):
    """Settings applied to every operand DaemonSet."""

    labels: dict[str, str] | None = Field(default=None, description="Labels added to the DaemonSets and their pods.")
    annotations: dict[str, str] | None = Field(
        default=None, description="Annotations added to the DaemonSets and their pods."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, description="Tolerations; when non-empty they replace the default ones."
    )
    priority_class_name: str | None = Field(default=None, description="Priority class of the operand pods.")
    update_strategy: Literal["RollingUpdate", "OnDelete"] = Field(
        default="RollingUpdate", description="Update strategy of the DaemonSets."
    )
    rolling_update: RollingUpdateSpec | None = Field(default=None, description="Rolling update settings.")


class OperatorSpec(_Open):
    runtime_class: str | None = Field(
        default=None, description="RuntimeClass of the operand pods; no runtimeClassName is set when empty."
    )
    labels: dict[str, str] | None = Field(default=None, description="Labels of the operator pod (used by the chart).")
    annotations: dict[str, str] | None = Field(
        default=None, description="Annotations of the operator pod (used by the chart)."
    )


class ClusterPolicySpec(_Open):
    """The supported subset of NVIDIA's ClusterPolicySpec; other sections are kept and reported as unsupported."""

    operator: OperatorSpec = Field(default_factory=OperatorSpec, description="Operator-wide settings.")
    daemonsets: DaemonsetsSpec = Field(default_factory=DaemonsetsSpec, description="Common DaemonSet settings.")
    driver: DriverSpec = Field(default_factory=DriverSpec, description="Driver management.")
    device_plugin: ComponentSpec = Field(default_factory=ComponentSpec, description="NVIDIA device plugin.")
    gfd: ComponentSpec = Field(default_factory=ComponentSpec, description="GPU feature discovery.")
    dcgm_exporter: ComponentSpec = Field(default_factory=ComponentSpec, description="DCGM exporter.")
    mig: MigSpec = Field(default_factory=MigSpec, description="MIG strategy.")
    mig_manager: MigManagerSpec = Field(default_factory=MigManagerSpec, description="MIG manager.")


class Condition(_Leaf):
    """A metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = None


class ClusterPolicyStatus(_Leaf):
    state: State = Field(description="Overall state: ready, notReady or ignored.")
    namespace: str | None = Field(default=None, description="Namespace of the operator and its operands.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the status was computed for (read by helm --wait)."
    )
    conditions: list[Condition] | None = Field(default=None, description="Ready and Error conditions.")


def parse_spec(spec: Mapping[str, Any] | None) -> ClusterPolicySpec:
    """The typed spec of a ClusterPolicy body; raise PolicyError with each field path that is wrong."""
    try:
        return ClusterPolicySpec.model_validate(dict(spec or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in ("spec", *err["loc"]))
            problems.append(f"{path}: {err['msg']}")
        raise PolicyError("invalid ClusterPolicy: " + "; ".join(problems)) from None


def _extras(model: BaseModel, path: str) -> Iterator[str]:
    for key in sorted(model.model_extra or {}):
        yield f"{path}.{key}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, _Open):
            field = type(model).model_fields[name]
            yield from _extras(value, f"{path}.{field.alias or name}")


def unsupported_fields(spec: ClusterPolicySpec) -> list[str]:
    """Paths of fields that are kept but not acted on, e.g. `spec.toolkit`, `spec.driver.usePrecompiled`."""
    return list(_extras(spec, "spec"))
