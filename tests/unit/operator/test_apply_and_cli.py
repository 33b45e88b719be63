"""The pure parts of apply (when to write), the metrics exposition, and the offline CLI commands."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_operator import cli
from gpu_operator.apply import HASH_ANNOTATION, collection_path, contains, needs_apply, object_path, with_hash
from gpu_operator.crd import crd_yaml
from gpu_operator.metrics import Metrics


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`cli.main` configures the root logger; put it back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


DS: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "x", "namespace": "ns", "labels": {"app": "x"}},
    "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}}},
}


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1, {"c": 2, "d": 3}]}, "e": 0}, True),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
        ({"a": 1}, {"a": "1"}, False),
        ({"a": {"b": 1}}, {"a": None}, False),
        ({"a": 1}, {}, False),
        (
            {"env": [{"name": "A", "value": "1"}, {"name": "B"}]},
            {"env": [{"name": "B"}, {"name": "A", "value": "1"}]},
            True,
        ),
        (
            {"env": [{"name": "A", "value": "1"}, {"name": "B"}]},
            {"env": [{"name": "B"}, {"name": "A", "value": "2"}]},
            False,
        ),
        ({"env": [{"name": "A"}, {"name": "B"}]}, {"env": [{"name": "A"}, {"name": "C"}]}, False),
        ([{"name": "A"}, {"name": "A", "x": 1}], [{"name": "A", "x": 1}, {"name": "A"}], False),
    ],
)
def test_contains(desired: Any, live: Any, expected: bool) -> None:
    assert contains(desired, live) is expected


def test_needs_apply() -> None:
    desired = with_hash(DS)
    assert desired["metadata"]["annotations"][HASH_ANNOTATION]
    assert "annotations" not in DS["metadata"]  # the input is not changed
    assert needs_apply(desired, None)
    live = yaml.safe_load(yaml.safe_dump(desired))
    live["metadata"]["uid"] = "u"
    live["status"] = {"numberReady": 1}
    assert not needs_apply(desired, live)
    # someone else changed an owned field
    drifted = yaml.safe_load(yaml.safe_dump(live))
    drifted["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "2"
    assert needs_apply(desired, drifted)
    # the rendering changed (e.g. a field was removed): the hash differs even though live still contains it
    smaller = with_hash({**DS, "metadata": {"name": "x", "namespace": "ns"}})
    assert needs_apply(smaller, live)


def test_paths() -> None:
    assert object_path("DaemonSet", "ns", "x") == "/apis/apps/v1/namespaces/ns/daemonsets/x"
    assert object_path("ClusterRole", "", "r") == "/apis/rbac.authorization.k8s.io/v1/clusterroles/r"
    assert collection_path("ConfigMap", "ns") == "/api/v1/namespaces/ns/configmaps"
    assert collection_path("ConfigMap") == "/api/v1/configmaps"


def test_metrics_exposition() -> None:
    m = Metrics()
    m.describe("reconciles_total", "Reconciles.")
    m.inc("reconciles_total", result="success")
    m.inc("reconciles_total", 2, result="success")
    m.set("gpu_nodes", 3)
    text = m.exposition()
    assert "# HELP gpu_operator_reconciles_total Reconciles." in text
    assert "# TYPE gpu_operator_reconciles_total counter" in text
    assert 'gpu_operator_reconciles_total{result="success"} 3' in text
    assert "# TYPE gpu_operator_gpu_nodes gauge\ngpu_operator_gpu_nodes 3" in text
    assert m.value("reconciles_total", result="success") == 3


@pytest.mark.parametrize(
    ("a", "b", "older"),
    [("0.0.1", "0.1.0", True), ("0.1.0", "0.1.0", False), ("v1.2", "1.10", True), ("2.0.0rc1", "1.9", False)],
)
def test_version_order(a: str, b: str, older: bool) -> None:
    assert (cli._version_tuple(a) < cli._version_tuple(b)) is older


def test_crd_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd"]) == 0
    assert capsys.readouterr().out == crd_yaml()


def test_render_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MIG_MANAGER_IMAGE", "DEVICE_PLUGIN_IMAGE", "GFD_IMAGE", "DCGM_EXPORTER_IMAGE"):
        monkeypatch.setenv(name, "example/image:1")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"metadata": {"name": "cp", "uid": "u"}, "spec": {"mig": {"strategy": "mixed"}}}))
    assert cli.main(["render", "-f", str(policy), "--namespace", "ops"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["metadata"].get("namespace", "ops") for d in docs} == {"ops"}
    assert all(d["metadata"]["ownerReferences"][0]["name"] == "cp" for d in docs)
    monkeypatch.setattr(sys, "stdin", io.StringIO("spec:\n  migManager:\n    enabled: false\n"))
    assert cli.main(["render", "-f", "-"]) == 0
    assert "nvidia-mig-manager" not in capsys.readouterr().out


def test_render_command_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("spec:\n  mig:\n    strategy: dual\n")
    assert cli.main(["render", "-f", str(policy)]) == 1
    assert "spec.mig.strategy" in capsys.readouterr().err
