"""Resource types served by kubesim: the built-in table and the shape CRDs are turned into. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource (plural) of one group-version."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # True for custom resources (served from a CRD): strategic merge patch is refused with 415.
    custom: bool = False
    # Whether a create keeps `.status` from the body (nodes do; most workloads reset it).
    status_on_create: bool = False
    # Structural schema of this version (custom resources only) and its preserve-unknown-fields flag.
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    # Field selectors allowed beyond metadata.name and metadata.namespace.
    field_labels: tuple[str, ...] = ()
    # The storage version for custom resources: objects are stored under it and served under each version.
    storage_version: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def storage_api_version(self) -> str:
        version = self.storage_version or self.version
        return f"{self.group}/{version}" if self.group else version

    @property
    def group_resource(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    status_on_create: bool = False,
    fields: tuple[str, ...] = (),
    singular: str = "",
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=singular or kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        categories=cats,
        subresources=sub,
        status_on_create=status_on_create,
        field_labels=fields,
    )


EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

BUILTIN: tuple[ResourceType, ...] = (
    _r(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short=("ns",),
        sub=("status", "finalize"),
        fields=("status.phase",),
    ),
    _r(
        "",
        "v1",
        "nodes",
        "Node",
        namespaced=False,
        short=("no",),
        sub=("status",),
        status_on_create=True,
        fields=("spec.unschedulable",),
    ),
    _r(
        "",
        "v1",
        "pods",
        "Pod",
        short=("po",),
        cats=("all",),
        sub=("status", "log", "eviction"),
        fields=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
    ),
    _r("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _r("", "v1", "secrets", "Secret", fields=("type",)),
    _r("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _r("", "v1", "services", "Service", short=("svc",), cats=("all",), sub=("status",)),
    _r("", "v1", "events", "Event", short=("ev",), fields=EVENT_FIELDS),
    _r("apps", "v1", "daemonsets", "DaemonSet", short=("ds",), cats=("all",), sub=("status",)),
    _r("apps", "v1", "deployments", "Deployment", short=("deploy",), cats=("all",), sub=("status", "scale")),
    _r(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short=("rs",),
        cats=("all",),
        sub=("status", "scale"),
        fields=("status.replicas",),
    ),
    _r("batch", "v1", "jobs", "Job", cats=("all",), sub=("status",), fields=("status.successful",)),
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _r(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        cats=("api-extensions",),
        sub=("status",),
    ),
    _r("coordination.k8s.io", "v1", "leases", "Lease"),
    _r("events.k8s.io", "v1", "events", "Event", short=("ev",), fields=EVENT_FIELDS),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        namespaced=False,
        cats=("api-extensions",),
        sub=("status",),
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        namespaced=False,
        cats=("api-extensions",),
    ),
)

# Kinds of subresources as discovery lists them (group, version, kind); None means the parent's kind.
SUBRESOURCE_KINDS: dict[str, tuple[str, str, str] | None] = {
    "status": None,
    "scale": ("autoscaling", "v1", "Scale"),
    "eviction": ("policy", "v1", "Eviction"),
    "log": ("", "v1", "Pod"),
    "finalize": None,
}
SUBRESOURCE_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "eviction": ("create",),
    "log": ("get",),
    "finalize": ("update",),
}

# Top-level fields each built-in kind accepts (for fieldValidation=Strict); metadata is checked separately.
TOP_LEVEL_FIELDS: dict[str, frozenset[str]] = {
    "Namespace": frozenset({"spec", "status"}),
    "Node": frozenset({"spec", "status"}),
    "Pod": frozenset({"spec", "status"}),
    "ConfigMap": frozenset({"data", "binaryData", "immutable"}),
    "Secret": frozenset({"data", "stringData", "type", "immutable"}),
    "ServiceAccount": frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    "Service": frozenset({"spec", "status"}),
    "Event": frozenset(
        {
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
            "regarding",
            "note",
            "reportingController",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        }
    ),
    "DaemonSet": frozenset({"spec", "status"}),
    "Deployment": frozenset({"spec", "status"}),
    "ReplicaSet": frozenset({"spec", "status"}),
    "Job": frozenset({"spec", "status"}),
    "Role": frozenset({"rules"}),
    "ClusterRole": frozenset({"rules", "aggregationRule"}),
    "RoleBinding": frozenset({"subjects", "roleRef"}),
    "ClusterRoleBinding": frozenset({"subjects", "roleRef"}),
    "CustomResourceDefinition": frozenset({"spec", "status"}),
    "Lease": frozenset({"spec"}),
    "ValidatingAdmissionPolicy": frozenset({"spec", "status"}),
    "ValidatingAdmissionPolicyBinding": frozenset({"spec"}),
}

METADATA_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def builtin_by_group_resource() -> dict[tuple[str, str], ResourceType]:
    return {r.group_resource: r for r in BUILTIN}
