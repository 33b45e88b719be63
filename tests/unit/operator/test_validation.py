"""Validation of a custom MIG config against labelled nodes and their GPUs (reports, never blocks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gpu_operator.inventory import INVENTORY_ANNOTATION
from gpu_operator.policy import parse_spec
from gpu_operator.validation import (
    Finding,
    NodeFacts,
    summarize,
    validate_gpu_clients_config,
    validate_mig_config,
)

NS = "gpu-operator"
POLICY = parse_spec({"migManager": {"config": {"name": "custom-mig", "default": "all-disabled"}}})
CONFIG = """
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  h100-7:
    - devices: all
      mig-enabled: true
      mig-devices:
        1g.10gb: 7
  too-many:
    - devices: all
      mig-enabled: true
      mig-devices:
        1g.10gb: 8
  a100-only:
    - devices: all
      mig-enabled: true
      mig-devices:
        1g.5gb: 7
"""


def _cm(data: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "custom-mig", "namespace": NS},
        "data": {"config.yaml": CONFIG} if data is None else data,
    }


def _h100_node(name: str, config: str, gpus: int = 2) -> NodeFacts:
    inventory = {
        "version": "v1",
        "gpus": [{"index": i, "pciId": "0x233010DE", "migCapable": True} for i in range(gpus)],
    }
    return NodeFacts(
        name,
        {"nvidia.com/mig.config": config, "nvidia.com/gpu.deploy.mig-manager": "true"},
        {INVENTORY_ANNOTATION: json.dumps(inventory)},
    )


def test_valid_config_has_no_findings() -> None:
    nodes = [_h100_node("n1", "h100-7"), _h100_node("n2", "all-disabled"), NodeFacts("cpu", {}, {})]
    assert validate_mig_config(POLICY, NS, _cm(), nodes) == []


def test_no_custom_config_means_nothing_to_check() -> None:
    assert validate_mig_config(parse_spec({}), NS, None, [_h100_node("n1", "nope")]) == []
    disabled = parse_spec({"migManager": {"enabled": False, "config": {"name": "custom-mig"}}})
    assert validate_mig_config(disabled, NS, None, []) == []


@pytest.mark.parametrize(
    ("configmap", "match"),
    [
        (None, "ConfigMap gpu-operator/custom-mig (migManager.config.name) does not exist"),
        (_cm({"config": CONFIG}), "has no key config.yaml (keys: config)"),
        (_cm({"config.yaml": "version: v1\nmig-configs: [\n"}), "does not parse"),
        (_cm({"config.yaml": "version: v2\nmig-configs: {}\n"}), "does not parse"),
    ],
)
def test_broken_configmap(configmap: dict[str, Any] | None, match: str) -> None:
    (finding,) = validate_mig_config(POLICY, NS, configmap, [_h100_node("n1", "h100-7")])
    assert match in finding.message


def test_unknown_config_name_names_node_and_config() -> None:
    (finding,) = validate_mig_config(POLICY, NS, _cm(), [_h100_node("n1", "all-balanced")])
    assert finding.node == "n1" and finding.config == "all-balanced"
    assert "node n1 is labelled nvidia.com/mig.config=all-balanced" in finding.message
    assert "h100-7" in finding.message  # lists what is defined


def test_geometry_that_does_not_fit_names_node_gpu_and_config() -> None:
    findings = validate_mig_config(POLICY, NS, _cm(), [_h100_node("n1", "too-many", gpus=2)])
    assert len(findings) == 2  # one per GPU
    assert all(f.node == "n1" and f.config == "too-many" for f in findings)
    assert "GPU 0" in findings[0].message and "GPU 1" in findings[1].message


def test_profile_unknown_to_the_gpu() -> None:
    (first, _) = validate_mig_config(POLICY, NS, _cm(), [_h100_node("n1", "a100-only")])
    assert "1g.5gb" in first.message


def test_nodes_without_inventory_or_opted_out_are_checked_by_name_only() -> None:
    no_inventory = NodeFacts("n1", {"nvidia.com/mig.config": "too-many"}, {})
    opted_out = NodeFacts("n2", {"nvidia.com/mig.config": "nope", "nvidia.com/gpu.deploy.mig-manager": "false"}, {})
    bad_inventory = NodeFacts("n3", {"nvidia.com/mig.config": "too-many"}, {INVENTORY_ANNOTATION: "{"})
    assert validate_mig_config(POLICY, NS, _cm(), [no_inventory, opted_out, bad_inventory]) == []


def test_node_facts_from_body() -> None:
    body = {"metadata": {"name": "n1", "labels": {"a": "b"}}}
    assert NodeFacts.from_body(body) == NodeFacts("n1", {"a": "b"}, {})


def test_summarize_caps_the_message() -> None:
    findings = [Finding(f"problem {i}") for i in range(8)]
    assert summarize(findings, limit=3) == "problem 0; problem 1; problem 2; and 5 more"
    assert summarize(findings[:1]) == "problem 0"


CLIENTS_POLICY = parse_spec({"migManager": {"gpuClientsConfig": {"name": "my-clients"}}})


@pytest.mark.parametrize(
    ("configmap", "match"),
    [
        (None, "ConfigMap gpu-operator/my-clients (migManager.gpuClientsConfig.name) does not exist"),
        ({"data": {}}, "has no key clients.yaml (keys: none)"),
        ({"data": {"clients.yaml": "version: v1\nsystemd-services: [\n"}}, "not valid YAML"),
        ({"data": {"clients.yaml": "version: v1\nsystemd-services: nvsm.service\n"}}, "must be a list of unit names"),
    ],
)
def test_broken_gpu_clients_config(configmap: dict[str, Any] | None, match: str) -> None:
    (finding,) = validate_gpu_clients_config(CLIENTS_POLICY, NS, configmap)
    assert match in finding.message


@pytest.mark.parametrize(
    ("policy", "configmap"),
    [
        (CLIENTS_POLICY, {"data": {"clients.yaml": "version: v1\nsystemd-services:\n  - nvsm.service\n"}}),
        (CLIENTS_POLICY, {"data": {"clients.yaml": "version: v1\n"}}),
        (parse_spec({}), None),
        (parse_spec({"migManager": {"gpuClientsConfig": {"name": "default-gpu-clients"}}}), None),
        (parse_spec({"migManager": {"enabled": False, "gpuClientsConfig": {"name": "x"}}}), None),
    ],
)
def test_good_or_unchecked_gpu_clients_config(policy: Any, configmap: dict[str, Any] | None) -> None:
    assert validate_gpu_clients_config(policy, NS, configmap) == []
