"""Acceptance 2: bad input ends in `failed` with a clear reason, the gates as they were and the GPUs unchanged; an
empty label does nothing."""

from __future__ import annotations

import pytest
from agent_support import (
    DEFAULT_GATES,
    FakeDaemonSets,
    ThreadAgent,
    annotations_of,
    events_of,
    iter_gate_values,
    labels_of,
    reason_of,
    set_labels,
    wait_state,
)

from kubesim.testing import wait_for
from mig_manager.agent.labels import STATE_LABEL
from mig_manager.devices.simulated import read_state

CUSTOM = """version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  wrong-profile:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 7
  infeasible:
    - devices: all
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
        "1g.10gb": 1
  beyond:
    - devices: [0, 9]
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
  beyond-infeasible:
    - devices: [1, 9]
      mig-enabled: true
      mig-devices:
        "7g.80gb": 2
"""


@pytest.mark.parametrize(
    ("config_text", "label", "expected"),
    [
        (
            None,
            "no-such-config",
            ['selected mig-config not present: "no-such-config"', "available configs: all-disabled"],
        ),
        ("version: v1\nmig-configs:\n  a: [oops\n", "all-disabled", ["cannot use the MIG config file", "config.yaml"]),
        (CUSTOM, "wrong-profile", ["MIG config 'wrong-profile' cannot be applied", "1g.5gb"]),
        (CUSTOM, "infeasible", ["MIG config 'infeasible' cannot be applied", "3g.40gb"]),
        (CUSTOM, "beyond-infeasible", ["MIG config 'beyond-infeasible' cannot be applied", "selects GPU index 9"]),
    ],
    ids=["unknown-config", "malformed-file", "unknown-profile", "infeasible", "index-beyond-and-infeasible"],
)
def test_bad_input_fails_clearly_and_touches_nothing(
    kubesim, core, gpu_node, config_text: str | None, label: str, expected: list[str]
) -> None:  # type: ignore[no-untyped-def]
    if config_text is not None:
        gpu_node.config.write_text(config_text)
    before = read_state(gpu_node.gpu_state)["gpus"]
    with FakeDaemonSets(kubesim) as daemonsets, ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": label})
        labels = wait_state(core, "failed")
    reason = reason_of(core)
    for text in expected:
        assert text in reason
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    assert "pending" not in list(iter_gate_values(daemonsets.seen, STATE_LABEL))
    assert read_state(gpu_node.gpu_state)["gpus"] == before
    assert "nvidia.com/mig.config.journal" not in annotations_of(core)
    events = events_of(core)
    assert [(t, r) for t, r, _ in events] == [("Warning", "MigConfigInvalid")]
    assert expected[0] in events[0][2]


def test_empty_label_does_nothing(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    set_labels(core, {"nvidia.com/mig.config": ""})
    before = read_state(gpu_node.gpu_state)["gpus"]
    with ThreadAgent(gpu_node) as runner:
        assert runner.agent.ready.wait(30)
        runner.agent.wake()
        wait_for(lambda: "nvidia.com/mig.inventory" in annotations_of(core), timeout=30, what="inventory")
        labels = labels_of(core)
        assert STATE_LABEL not in labels
        assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
        assert events_of(core) == []
        assert read_state(gpu_node.gpu_state)["gpus"] == before
        # A label that goes away also does nothing; a real one afterwards is applied.
        set_labels(core, {"nvidia.com/mig.config": "all-1g.10gb"})
        wait_state(core, "success", config="all-1g.10gb")


def test_a_permanent_failure_stays_until_the_label_or_the_config_changes(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.config.write_text(CUSTOM)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node) as runner:
        set_labels(core, {"nvidia.com/mig.config": "infeasible"})
        wait_state(core, "failed")
        runs = runner.agent.runs
        runner.agent.wake()
        set_labels(core, {"unrelated": "label"})  # an event that changes nothing relevant
        assert runner.agent.runs == runs
        # The config file is fixed in place: the same label is evaluated again and applied.
        gpu_node.config.write_text(CUSTOM.replace('"3g.40gb": 2', '"3g.40gb": 1'))
        wait_state(core, "success", config="infeasible")
        # A label change after a failure is applied too.
        set_labels(core, {"nvidia.com/mig.config": "no-such"})
        wait_state(core, "failed")
        set_labels(core, {"nvidia.com/mig.config": "all-disabled"})
        wait_state(core, "success", config="all-disabled")


def test_a_device_index_beyond_the_nodes_gpus_is_a_warning(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """NVIDIA ignores such an index silently (a config shared by nodes of different sizes); this agent applies the rest
    and says so: a Warning event and the warning in the reason."""
    gpu_node.config.write_text(CUSTOM)
    before = read_state(gpu_node.gpu_state)["gpus"]
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "beyond"})
        labels = wait_state(core, "success", config="beyond")
    reason = reason_of(core)
    assert reason.startswith("MIG config 'beyond' applied (warning: ")
    assert "entry 0 selects GPU index 9, but this node has GPUs 0-7; ignored" in reason
    warnings = [m for t, r, m in events_of(core) if (t, r) == ("Warning", "MigConfigWarning")]
    assert len(warnings) == 1 and "GPU index 9" in warnings[0]
    after = read_state(gpu_node.gpu_state)["gpus"]
    assert len(after[0]["gpu_instances"]) == 7
    assert after[1:] == before[1:]
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES


SHARED = """version: v1
mig-configs:
  all-1g.10gb:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
  a100-only:
    - device-filter: ["0x20B010DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 7
  per-type:
    - device-filter: ["0x20B010DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 7
    - device-filter: ["0x233010DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
"""


def test_a_config_that_selects_none_of_the_nodes_gpus_is_a_warning(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """NVIDIA applies nothing and reports success; this agent too, but the reason and a Warning event say that the
    config selects none of the node's GPUs, and which filters and GPUs those are. A config shared by several GPU
    types, whose other entries select nothing here, gives no warning."""
    gpu_node.config.write_text(SHARED)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-1g.10gb"})
        wait_state(core, "success", config="all-1g.10gb")
        before = read_state(gpu_node.gpu_state)["gpus"]
        set_labels(
            core, {"nvidia.com/mig.config": "a100-only"}
        )  # from success: the reason must not stay on the old one
        labels = wait_state(core, "success", config="a100-only")
        reason = reason_of(core)
        assert reason == (
            "MIG config 'a100-only' is applied (warning: MIG config 'a100-only' selects none of this node's GPUs: "
            "entry 0 (device-filter 0x20B010DE); this node has GPUs 0-7 (0x233010DE, H100-SXM5-80GB); nothing to "
            "change)"
        )
        warnings = wait_for(  # the Event follows the patch
            lambda: [(t, m) for t, r, m in events_of(core) if r == "MigConfigWarning"], timeout=10, what="the event"
        )
        assert warnings == [("Warning", reason)]
        assert read_state(gpu_node.gpu_state)["gpus"] == before
        assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
        set_labels(core, {"nvidia.com/mig.config": "per-type"})  # its H100 entry holds already
        wait_state(core, "success", config="per-type")
        assert reason_of(core) == "MIG config 'per-type' is applied"
    assert [r for _, r, _ in events_of(core)].count("MigConfigWarning") == 1
