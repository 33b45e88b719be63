"""Bad GPU clients files through the agent's parser and the operator's check of a custom clients ConfigMap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from corpus_support import missing, params

from gpu_operator.policy import parse_spec
from gpu_operator.validation import validate_gpu_clients_config
from mig_manager.agent.errors import AgentError
from mig_manager.agent.main import read_clients_file

KEY = "clients.yaml"


@pytest.mark.parametrize("case", params("clients"))
def test_bad_clients_file(case: dict[str, Any], tmp_path: Path) -> None:
    data: dict[str, str] = case["data"]
    problems: list[str] = []
    if KEY in data:
        path = tmp_path / KEY
        path.write_text(data[KEY])
        try:
            services = read_clients_file(str(path))
        except AgentError as exc:
            lacks = missing(str(exc), [*case["expect"], *case.get("agent", [])])
            if lacks:
                problems.append(f"agent message lacks {lacks}: {exc}")
        else:
            problems.append(f"the agent accepted it, services {services}")
        assert path.read_text() == data[KEY]
    policy = parse_spec({"migManager": {"enabled": True, "gpuClientsConfig": {"name": "clients"}}})
    configmap = {"metadata": {"name": "clients", "namespace": "gpu-operator"}, "data": dict(data)}
    findings = validate_gpu_clients_config(policy, "gpu-operator", configmap)
    if not findings:
        problems.append("the operator reports nothing")
    else:
        message = "; ".join(str(f) for f in findings)
        lacks = missing(message, [*case["expect"], *case.get("operator", [])])
        if lacks:
            problems.append(f"operator finding lacks {lacks}: {message}")
    assert configmap["data"] == data
    assert not problems, "\n".join(problems)
