"""The journal annotation: round trip and clear errors."""

from __future__ import annotations

import json

import pytest

from mig_manager.agent.errors import JournalError
from mig_manager.agent.journal import Journal, Phase, RebootMark, decode, encode


def _journal(**changes: object) -> Journal:
    base = Journal(
        target="all-balanced",
        phase=Phase.PAUSED,
        gates={"nvidia.com/gpu.deploy.device-plugin": "true", "nvidia.com/gpu.deploy.nvsm": None},
        started="2026-01-01T00:00:00Z",
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "journal",
    [
        _journal(),
        _journal(phase=Phase.STOPPING_SERVICES, services=("a.service", "kubelet.service"), mode_change=True),
        _journal(phase=Phase.APPLYING, services=()),
        _journal(phase=Phase.REBOOTING, reboot=RebootMark("boot-1", "all-balanced")),
        _journal(checkpoint={"Version": "v1", "MigState": {"Devices": []}}),
    ],
)
def test_round_trip(journal: Journal) -> None:
    decoded = decode(encode(journal))
    assert decoded == journal
    assert decoded.checkpoint == journal.checkpoint


def test_encoding_is_compact_json_with_the_documented_keys() -> None:
    data = json.loads(encode(_journal(services=("x",))))
    assert list(data) == ["version", "target", "phase", "started", "gates", "modeChange", "services"]
    assert data["gates"]["nvidia.com/gpu.deploy.nvsm"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"version": "v2"}', "version 'v2' is not supported"),
        ('{"version": "v1", "target": ""}', "target"),
        ('{"version": "v1", "target": "x", "phase": "dancing"}', "phase 'dancing' is not one of"),
        ('{"version": "v1", "target": "x", "phase": "paused", "gates": []}', "gates"),
        ('{"version": "v1", "target": "x", "phase": "paused", "gates": {"a": 1}}', "gates"),
        ('{"version": "v1", "target": "x", "phase": "paused", "gates": {}, "services": "a"}', "services"),
        ('{"version": "v1", "target": "x", "phase": "paused", "gates": {}, "reboot": {}}', "reboot"),
        ('{"version": "v1", "target": "x", "phase": "paused", "gates": {}, "checkpoint": 3}', "checkpoint"),
    ],
)
def test_decode_errors(text: str, message: str) -> None:
    with pytest.raises(JournalError, match="journal annotation") as info:
        decode(text)
    assert message in str(info.value)
