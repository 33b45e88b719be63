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
