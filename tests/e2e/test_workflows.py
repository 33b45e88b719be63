"""NVIDIA's documented MIG workflows end to end (issue 9): the real helm and kubectl against kubesim's default
topology (8x H100 80GB, 4x A100 40GB + 4x A100 80GB, 2x A30 passthrough, a node without GPUs), this project's
operator and node agents running as processes, NVIDIA's device plugin and GFD emulated.

The tests run in order on one cluster, each workflow starting where the previous one left the cluster (as `make demo`
runs them); the commands and checks are in `e2e_workflows.py`."""

from __future__ import annotations

from e2e_workflows import Workflows


def test_workflow_1_install_with_single_strategy(workflows: Workflows) -> None:
    workflows.workflow_1_install()


def test_workflow_2_single_strategy_all_1g_10gb(workflows: Workflows) -> None:
    workflows.workflow_2_single()


def test_workflow_3_mixed_strategy_all_balanced(workflows: Workflows) -> None:
    workflows.workflow_3_mixed()


def test_workflow_4_reconfigure_all_3g_40gb_and_logs(workflows: Workflows) -> None:
    workflows.workflow_4_reconfigure()


def test_workflow_5_custom_config_through_helm_values(workflows: Workflows) -> None:
    workflows.workflow_5_helm_config()


def test_workflow_6_custom_configmap_with_kubectl(workflows: Workflows) -> None:
    workflows.workflow_6_kubectl_config()


def test_workflow_7_all_disabled(workflows: Workflows) -> None:
    workflows.workflow_7_disable()


def test_workflow_8_preinstalled_drivers_host_gpu_clients(workflows: Workflows) -> None:
    workflows.workflow_8_preinstalled_drivers()


def test_workflow_9_with_reboot_on_the_passthrough_node(workflows: Workflows) -> None:
    workflows.workflow_9_reboot()


def test_workflow_10_infeasible_geometry_fails_touching_nothing(workflows: Workflows) -> None:
    workflows.workflow_10_infeasible()
