"""Semantic validation of built-in kinds: the checks of the real server that manifests most often trip. Pure.

Not exhaustive: workload selectors and templates, containers, Job restart policies, immutable selectors and role
references, ConfigMap and Secret keys, replica counts. Messages follow the real server's `field.Error` wording.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from kubesim.errors import FieldError
from kubesim.resources import ResourceType
from kubesim.selectors import selector_from_label_selector_object

Obj = dict[str, Any]
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_WORKLOADS = {("apps", "deployments"), ("apps", "daemonsets"), ("apps", "replicasets"), ("batch", "jobs")}


# Label keys and values: apimachinery's util/validation (IsQualifiedName, IsValidLabelValue), one message per rule
# broken, each a `field.Invalid` of `metadata.labels` (ValidateLabels).
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63
SUBDOMAIN_MAX = 253
_LABEL_VALUE_FMT = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_SUBDOMAIN_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}$")


def _quote(text: str) -> str:
    """Go's %q of a string, as field.Invalid prints the value."""
    return json.dumps(text, ensure_ascii=False)


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, spacing included ("(e.g. 'MyValue',  or 'my_value', ...")."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {listed}regex used for validation is '{fmt}')"


LABEL_VALUE_MSG = regex_error(
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character",
    _LABEL_VALUE_FMT,
    "MyValue",
    "my_value",
    "12345",
)
QUALIFIED_NAME_MSG = regex_error(
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
    _QUALIFIED_NAME_FMT,
    "MyName",
    "my.name",
    "123-abc",
)
SUBDOMAIN_MSG = regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character",
    _SUBDOMAIN_FMT,
    "example.com",
)


def label_value_errors(value: str) -> list[str]:
    """IsValidLabelValue: the length rule and the character rule, each reported when broken."""
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(LABEL_VALUE_MSG)
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """IsQualifiedName (a label key): an optional DNS subdomain prefix and '/', then a name of at most 63 characters."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [
            f"a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > SUBDOMAIN_MAX:
                errs.append(f"prefix part {max_len_error(SUBDOMAIN_MAX)}")
            if not _SUBDOMAIN_RE.match(prefix):
                errs.append(f"prefix part {SUBDOMAIN_MSG}")
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append(f"name part {max_len_error(QUALIFIED_NAME_MAX)}")
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append(f"name part {QUALIFIED_NAME_MSG}")
    return errs


def label_errors(labels: Any) -> list[FieldError]:
    """ValidateLabels: every key and value of `metadata.labels`, in the map's order."""
    path = "metadata.labels"
    if not isinstance(labels, dict):
        return [FieldError(path, "FieldValueInvalid", "Invalid value: must be a map")]
    errs: list[FieldError] = []
    for key, value in labels.items():
        errs += [
            FieldError(path, "FieldValueInvalid", f"Invalid value: {_quote(str(key))}: {m}")
            for m in qualified_name_errors(str(key))
        ]
        if not isinstance(value, str):
            errs.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {_go(value)}: must be a string"))
            continue
        errs += [
            FieldError(path, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {m}")
            for m in label_value_errors(value)
        ]
    return errs


def _go(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _required(errs: list[FieldError], path: str, detail: str = "") -> None:
    errs.append(FieldError(path, "FieldValueRequired", f"Required value{': ' + detail if detail else ''}"))


def _pod_spec(spec: Any, path: str, errs: list[FieldError], *, job: bool = False) -> None:
    if not isinstance(spec, dict):
        _required(errs, path)
        return
    containers = spec.get("containers")
    if not containers:
        _required(errs, f"{path}.containers")
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(field) or []):
            where = f"{path}.{field}[{i}]"
            if not isinstance(container, dict):
                continue
            name = container.get("name")
            if not name:
                _required(errs, f"{where}.name")
            elif name in names:
                errs.append(FieldError(f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
            else:
                names.add(str(name))
            if not container.get("image"):
                _required(errs, f"{where}.image")
    policy = spec.get("restartPolicy")
    allowed = ("OnFailure", "Never") if job else ("Always", "OnFailure", "Never")
    if job and policy is None:
        _required(errs, f"{path}.restartPolicy", 'valid values: "OnFailure", "Never"')
    elif policy is not None and policy not in allowed:
        shown = ", ".join(f'"{a}"' for a in allowed)
        errs.append(
            FieldError(
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{policy}": supported values: {shown}',
            )
        )


def _workload(rt: ResourceType, obj: Obj, old: Obj | None, errs: list[FieldError]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        _required(errs, "spec")
        return
    job = rt.group_resource == ("batch", "jobs")
    template = spec.get("template")
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errs.append(
            FieldError(
                "spec.replicas", "FieldValueInvalid", f"Invalid value: {replicas}: must be greater than or equal to 0"
            )
        )
    selector = spec.get("selector")
    if not job:
        if not selector:
            _required(errs, "spec.selector")
        elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errs.append(
                FieldError(
                    "spec.selector",
                    "FieldValueInvalid",
                    f"Invalid value: {_go(selector)}: empty selector is invalid for deployment",
                )
            )
    if not isinstance(template, dict):
        _required(errs, "spec.template")
        return
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and not job and not selector_from_label_selector_object(selector).matches(labels):
        errs.append(
            FieldError(
                "spec.template.metadata.labels",
                "FieldValueInvalid",
                f"Invalid value: {_go(labels)}: `selector` does not match template `labels`",
            )
        )
    _pod_spec(template.get("spec"), "spec.template.spec", errs, job=job)
    if old is not None:
        old_spec = old.get("spec") or {}
        if not job and old_spec.get("selector") != selector:
            errs.append(
                FieldError("spec.selector", "FieldValueInvalid", f"Invalid value: {_go(selector)}: field is immutable")
            )
        if job and old_spec.get("template") != template:
            errs.append(
                FieldError("spec.template", "FieldValueInvalid", f"Invalid value: {_go(template)}: field is immutable")
            )


def _data_keys(obj: Obj, field: str, errs: list[FieldError]) -> None:
    for key in obj.get(field) or {}:
        if len(key) > 253 or not _CONFIG_KEY.match(key):
            errs.append(
                FieldError(
                    f"{field}[{key}]",
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                    "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', "
                    "regex used for validation is '[-._a-zA-Z0-9]+')",
                )
            )


def undecodable_secret_data(obj: Obj) -> str | None:
    """A `data` value that is not base64 makes the real server fail decoding (400); the message, if any."""
    for key, value in (obj.get("data") or {}).items():
        if not isinstance(value, str):
            return f"json: cannot unmarshal {type(value).__name__} into Go struct field Secret.data of type []uint8"
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return f"illegal base64 data in data[{key}]"
    return None


def validate_builtin(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    """Semantic errors in a built-in object about to be stored (`old` is the stored version on update)."""
    errs: list[FieldError] = []
    gr = rt.group_resource
    if gr in _WORKLOADS:
        _workload(rt, obj, old, errs)
    elif gr == ("", "pods"):
        _pod_spec(obj.get("spec"), "spec", errs)
    elif gr in (("", "configmaps"), ("", "secrets")):
        _data_keys(obj, "data", errs)
        if gr == ("", "configmaps"):
            _data_keys(obj, "binaryData", errs)
            overlap = set(obj.get("data") or {}) & set(obj.get("binaryData") or {})
            for key in sorted(overlap):
                errs.append(
                    FieldError(
                        f"data[{key}]",
                        "FieldValueInvalid",
                        f'Invalid value: "{key}": duplicate of key present in binaryData',
                    )
                )
        if (
            old is not None
            and old.get("immutable")
            and (old.get("data") != obj.get("data") or old.get("binaryData") != obj.get("binaryData"))
        ):
            errs.append(
                FieldError("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set")
            )
    elif gr in (("rbac.authorization.k8s.io", "rolebindings"), ("rbac.authorization.k8s.io", "clusterrolebindings")):
        role_ref = obj.get("roleRef")
        if not isinstance(role_ref, dict) or not role_ref.get("name"):
            _required(errs, "roleRef.name")
        elif role_ref.get("kind") not in ("Role", "ClusterRole"):
            errs.append(
                FieldError(
                    "roleRef.kind",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{role_ref.get("kind")}": supported values: "Role", "ClusterRole"',
                )
            )
        if old is not None and old.get("roleRef") != role_ref:
            errs.append(
                FieldError("roleRef", "FieldValueInvalid", f"Invalid value: {_go(role_ref)}: cannot change roleRef")
            )
    return errs
