"""The node-scope ValidatingAdmissionPolicy, evaluated: its CEL expressions (standard CEL only, so that a CEL
interpreter gives what the API server gives) run with cel-python (a dev dependency) over admission requests of the
MIG manager: kubesim does not run admission policies."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
from chart_support import NAMESPACE, one, render

AGENT = f"system:serviceaccount:{NAMESPACE}:nvidia-mig-manager"
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "node-1",
        "labels": {"kubernetes.io/hostname": "node-1", "nvidia.com/mig.config": "all-disabled"},
        "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
    },
    "spec": {"podCIDR": "10.244.1.0/24"},
}


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return dict(one(render("admissionPolicy.enabled=true"), "ValidatingAdmissionPolicy")["spec"])


def evaluate(expression: str, activation: dict[str, Any]) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression)).evaluate(activation)


def admit(
    policy: dict[str, Any],
    new: dict[str, Any],
    old: dict[str, Any] = NODE,
    user: str = AGENT,
    node_name: str | None = "node-1",
    sub_resource: str = "",
) -> tuple[bool, list[str]]:
    """(allowed, messages of the failed validations), as the API server would decide for this UPDATE."""
    extra = {"authentication.kubernetes.io/node-name": [node_name]} if node_name else {}
    request = {"userInfo": {"username": user, "extra": extra}, "subResource": sub_resource, "operation": "UPDATE"}
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
    }
    if not all(bool(evaluate(c["expression"], activation)) for c in policy["matchConditions"]):
        return True, []  # the policy does not apply to this request
    variables = {}
    for var in policy.get("variables", []):
        activation["variables"] = celpy.json_to_cel(variables)
        variables[var["name"]] = evaluate(var["expression"], activation)
    activation["variables"] = celpy.json_to_cel({k: str(v) for k, v in variables.items()})
    failed = []
    for check in policy["validations"]:
        if not bool(evaluate(check["expression"], activation)):
            message = check.get("message") or str(evaluate(check["messageExpression"], activation))
            failed.append(message)
    return not failed, failed


def changed(**labels_and_annotations: Any) -> dict[str, Any]:
    node = copy.deepcopy(NODE)
    for key in ("labels", "annotations", "spec", "name"):
        if key in labels_and_annotations:
            value = labels_and_annotations[key]
            if key == "spec":
                node["spec"] = value
            elif key == "name":
                node["metadata"]["name"] = value
            elif value is None:
                node["metadata"].pop(key, None)
            else:
                node["metadata"][key] = value
    return node


LABELS: dict[str, str] = dict(NODE["metadata"]["labels"])  # type: ignore[index]
ANNOTATIONS: dict[str, str] = dict(NODE["metadata"]["annotations"])  # type: ignore[index]


def test_the_agent_may_write_nvidia_labels_and_annotations_on_its_own_node(policy: dict[str, Any]) -> None:
    new = changed(
        labels={**LABELS, "nvidia.com/mig.config.state": "pending", "nvidia.com/gpu.deploy.device-plugin": "paused"},
        annotations={**ANNOTATIONS, "nvidia.com/mig.config.journal": "{}"},
    )
    assert admit(policy, new) == (True, [])
    # and remove them again
    removed = changed(labels={"kubernetes.io/hostname": "node-1"})
    assert admit(policy, removed) == (True, [])
    # an old node without labels at all
    bare = changed(labels=None, annotations=None)
    assert admit(policy, changed(labels={"nvidia.com/mig.config.state": "success"}, annotations=None), old=bare)[0]


@pytest.mark.parametrize(
    ("what", "kwargs", "word"),
    [
        ("another node", {"new": changed(name="node-2"), "old": changed(name="node-2")}, "only the node its pod"),
        ("a token without node", {"new": changed(), "node_name": None}, "its token names no node"),
        ("a foreign label added", {"new": changed(labels={**LABELS, "node-role.kubernetes.io/gpu": ""})}, "labels"),
        ("a foreign label changed", {"new": changed(labels={**LABELS, "kubernetes.io/hostname": "x"})}, "labels"),
        ("a foreign label removed", {"new": changed(labels={"nvidia.com/mig.config": "all-disabled"})}, "labels"),
        ("a foreign annotation", {"new": changed(annotations={**ANNOTATIONS, "example.com/a": "b"})}, "annotations"),
        ("an annotation removed", {"new": changed(annotations=None)}, "annotations"),
        ("the spec", {"new": changed(spec={**NODE["spec"], "unschedulable": True})}, "spec"),
        ("the status", {"new": changed(), "sub_resource": "status"}, "status"),
    ],
)
def test_the_agent_may_not_change_anything_else(policy: dict[str, Any], what: str, kwargs: Any, word: str) -> None:
    allowed, messages = admit(policy, **kwargs)
    assert not allowed, what
    assert any(word in m for m in messages), (what, messages)


def test_other_users_are_not_matched(policy: dict[str, Any]) -> None:
    anything = changed(labels={"a": "b"}, spec={"unschedulable": True}, name="node-9")
    assert admit(policy, anything, user=f"system:serviceaccount:{NAMESPACE}:gpu-operator") == (True, [])
    assert admit(policy, anything, user="system:serviceaccount:other:nvidia-mig-manager") == (True, [])
