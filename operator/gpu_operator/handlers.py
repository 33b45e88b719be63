"""kopf wiring, and nothing else: every handler hands its event to the Controller.

Only `on.event` handlers are used, so kopf keeps no state on the objects (no annotations, no finalizers): a restarted
operator makes no writes to an unchanged cluster.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from gpu_operator.controller import Controller
from gpu_operator.policy import GROUP, PLURAL, VERSION
from gpu_operator.render import MANAGED_BY, MANAGED_BY_LABEL


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    operand_namespace = controller.settings.namespace

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # the operator posts its own Events, only on status transitions
        settings.scanning.disabled = True
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def clusterpolicy(**_: Any) -> None:
        controller.request("clusterpolicy")

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node(type: str | None, body: kopf.Body, **_: Any) -> None:
        await asyncio.to_thread(controller.node_event, type, dict(body))

    @kopf.on.event(
        "",
        "v1",
        "configmaps",
        registry=registry,
        when=lambda namespace, name, **_: namespace == operand_namespace and controller.watches_configmap(name),
    )
    def configmap(**_: Any) -> None:
        controller.request("configmap")

    @kopf.on.event("apps", "v1", "daemonsets", labels={MANAGED_BY_LABEL: MANAGED_BY}, registry=registry)
    def daemonset(**_: Any) -> None:
        controller.request("daemonset")

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    return registry
