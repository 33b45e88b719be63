"""Fixtures of the operator's integration tests: a kubesim per test with the CRD, and the operator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_harness import CRD, NS, Cluster, OperatorProcess

from kubesim.server import KubeSim
from kubesim.testing import Tools


@pytest.fixture
def cluster(kubesim: KubeSim, kubesim_tools: Tools) -> Cluster:
    c = Cluster(kubesim, kubesim_tools)
    c.kubectl("create", "namespace", NS)
    c.kubectl("apply", "--server-side", "-f", str(CRD))
    return c


@pytest.fixture
def operator(kubesim: KubeSim, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubesim, tmp_path)
    yield op
    op.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(op.logs()[-20000:])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + report.when, report)
