"""Semantic validation of built-in kinds, table-driven, through the registry (422 with field paths)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubesim.errors import ApiError
from kubesim.registry import Registry, WriteOptions
from kubesim.store import Store

DEPLOY: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d"},
    "spec": {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    },
}
RBAC = "rbac.authorization.k8s.io"
JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "j"},
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
}


def _registry() -> Registry:
    registry = Registry(Store())
    ns = registry.resource("", "v1", "namespaces")
    assert ns is not None
    registry.create(ns, "", {"metadata": {"name": "default"}}, WriteOptions())
    return registry


def _create(registry: Registry, group: str, plural: str, body: dict[str, Any]) -> None:
    rt = registry.resource(group, "v1", plural)
    assert rt is not None
    registry.create(rt, "default", body, WriteOptions())


def _mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    keys = path.split(".")
    cur = obj
    for key in keys[:-1]:
        cur = cur[int(key)] if key.isdigit() else cur[key]
    if value is None:
        del cur[keys[-1]]
    else:
        cur[keys[-1]] = value
    return obj


@pytest.mark.parametrize(
    ("group", "plural", "body", "field", "reason"),
    [
        ("apps", "deployments", _mutate(DEPLOY, "spec.selector", None), "spec.selector", "FieldValueRequired"),
        (
            "apps",
            "deployments",
            _mutate(DEPLOY, "spec.template.metadata.labels", {"app": "other"}),
            "spec.template.metadata.labels",
            "FieldValueInvalid",
        ),
        (
            "apps",
            "deployments",
            _mutate(DEPLOY, "spec.template.spec.containers", []),
            "spec.template.spec.containers",
            "FieldValueRequired",
        ),
        (
            "apps",
            "deployments",
            _mutate(DEPLOY, "spec.template.spec.containers.0.image", None),
            "spec.template.spec.containers[0].image",
            "FieldValueRequired",
        ),
        ("apps", "deployments", _mutate(DEPLOY, "spec.replicas", -1), "spec.replicas", "FieldValueInvalid"),
        (
            "batch",
            "jobs",
            _mutate(JOB, "spec.template.spec.restartPolicy", "Always"),
            "spec.template.spec.restartPolicy",
            "FieldValueNotSupported",
        ),
        (
            "batch",
            "jobs",
            _mutate(JOB, "spec.template.spec.restartPolicy", None),
            "spec.template.spec.restartPolicy",
            "FieldValueRequired",
        ),
        (
            "",
            "pods",
            {
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]},
            },
            "spec.containers[1].name",
            "FieldValueDuplicate",
        ),
        ("", "configmaps", {"metadata": {"name": "c"}, "data": {"bad key": "v"}}, "data[bad key]", "FieldValueInvalid"),
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            {
                "metadata": {"name": "rb"},
                "roleRef": {"kind": "Thing", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
            },
            "roleRef.kind",
            "FieldValueNotSupported",
        ),
    ],
)
def test_invalid_objects_are_422_with_the_field(
    group: str, plural: str, body: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ApiError) as exc:
        _create(_registry(), group, plural, body)
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    causes = [(c["field"], c["reason"]) for c in (exc.value.details or {})["causes"]]
    assert (field, reason) in causes


def test_valid_objects_pass() -> None:
    registry = _registry()
    _create(registry, "apps", "deployments", DEPLOY)
    _create(registry, "batch", "jobs", JOB)
    _create(registry, "", "secrets", {"metadata": {"name": "s"}, "data": {"k": "dg=="}})


def test_immutable_fields() -> None:
    registry = _registry()
    _create(registry, "apps", "deployments", DEPLOY)
    rt = registry.resource("apps", "v1", "deployments")
    assert rt is not None
    changed = _mutate(DEPLOY, "spec.selector", {"matchLabels": {"app": "d", "x": "y"}})
    changed["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    with pytest.raises(ApiError) as exc:
        registry.update(rt, "default", "d", changed, WriteOptions())
    assert exc.value.code == 422 and "field is immutable" in exc.value.message
    _create(registry, "batch", "jobs", JOB)
    jobs = registry.resource("batch", "v1", "jobs")
    assert jobs is not None
    with pytest.raises(ApiError):
        registry.update(
            jobs, "default", "j", _mutate(JOB, "spec.template.spec.containers.0.image", "y"), WriteOptions()
        )


def test_secret_data_must_be_base64() -> None:
    with pytest.raises(ApiError) as exc:
        _create(_registry(), "", "secrets", {"metadata": {"name": "s"}, "data": {"k": "not base64!"}})
    assert exc.value.code == 400


LONG = "all-1g-10gb-on-every-gpu-of-this-node-except-the-ones-that-are-busy"  # 67 characters
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        # apimachinery's ValidateLabels: one field.Invalid per rule broken, the length rule first.
        (
            {"k": LONG},
            f'ConfigMap "c" is invalid: metadata.labels: Invalid value: "{LONG}": must be no more than 63 characters',
        ),
        ({"k": "a b"}, f'ConfigMap "c" is invalid: metadata.labels: Invalid value: "a b": {VALUE_RULE}'),
        (
            {"k": LONG + "-"},
            f'ConfigMap "c" is invalid: [metadata.labels: Invalid value: "{LONG}-": must be no more than 63 '
            f'characters, metadata.labels: Invalid value: "{LONG}-": {VALUE_RULE}]',
        ),
        (
            {"x" * 64: "v"},
            f'ConfigMap "c" is invalid: metadata.labels: Invalid value: "{"x" * 64}": '
            "name part must be no more than 63 characters",
        ),
        ({"-k": "v"}, f'ConfigMap "c" is invalid: metadata.labels: Invalid value: "-k": {NAME_RULE}'),
        ({"/k": "v"}, 'ConfigMap "c" is invalid: metadata.labels: Invalid value: "/k": prefix part must be non-empty'),
        ({"Example.com/k": "v"}, "prefix part a lowercase RFC 1123 subdomain must consist of lower case"),
        ({"a/b/c": "v"}, "a qualified name must consist of alphanumeric characters"),
    ],
    ids=[
        "value-too-long",
        "value-charset",
        "value-both",
        "name-too-long",
        "name-charset",
        "empty-prefix",
        "prefix",
        "two-slashes",
    ],
)
def test_label_keys_and_values_are_refused_with_the_real_servers_messages(labels: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError) as exc:
        _create(_registry(), "", "configmaps", {"metadata": {"name": "c", "labels": labels}})
    assert exc.value.code == 422
    assert message in exc.value.message


@pytest.mark.parametrize("labels", [{"k": "x" * 63}, {"k": ""}, {"example.com/" + "x" * 63: "My_value.1"}])
def test_labels_within_the_rules_are_accepted(labels: dict[str, str]) -> None:
    _create(_registry(), "", "configmaps", {"metadata": {"name": "c", "labels": labels}})
