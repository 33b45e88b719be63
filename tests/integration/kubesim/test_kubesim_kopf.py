"""A small kopf operator against kubesim: create, update and delete handlers (with finalizers) each run exactly once."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubesim.server import KubeSim
from kubesim.testing import kube_client, wait_for

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


class Operator:
    """The operator under test, run by kopf in its own thread and loop."""

    def __init__(self, url: str) -> None:
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.registry = kopf.OperatorRegistry()
        self.settings = kopf.OperatorSettings()
        self.settings.watching.server_timeout = 30
        self.settings.networking.request_timeout = 30
        self.stop_flag: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        reg = self.registry

        @kopf.on.login(registry=reg)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=url, scheme="Bearer", token="kubesim", default_namespace="default")

        @kopf.on.create("example.com", "v1", "gadgets", registry=reg, id="created")
        def created(spec: Any, **_: Any) -> dict[str, Any]:
            self._record("create")
            return {"size": spec.get("size")}

        @kopf.on.update("example.com", "v1", "gadgets", registry=reg)
        def updated(**_: Any) -> None:
            self._record("update")

        @kopf.on.delete("example.com", "v1", "gadgets", registry=reg)
        def deleted(**_: Any) -> None:
            self._record("delete")

    def _record(self, what: str) -> None:
        with self.lock:
            self.calls[what] += 1

    def count(self, what: str) -> int:
        with self.lock:
            return self.calls[what]

    def _run(self) -> None:
        async def main() -> None:
            self.stop_flag = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            await kopf.operator(
                registry=self.registry,
                settings=self.settings,
                standalone=True,
                clusterwide=True,
                stop_flag=self.stop_flag,
            )

        asyncio.run(main())

    def start(self) -> None:
        self.thread.start()
        wait_for(lambda: self.loop is not None and self.stop_flag is not None, what="kopf to start")

    def stop(self) -> None:
        if self.loop is not None and self.stop_flag is not None:
            self.loop.call_soon_threadsafe(self.stop_flag.set)
        self.thread.join(60)


def test_kopf_handlers_run_exactly_once(kubesim: KubeSim) -> None:
    api = kube_client(kubesim)
    client.ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
    custom = client.CustomObjectsApi(api)
    operator = Operator(kubesim.url)
    operator.start()
    try:
        custom.create_namespaced_custom_object(
            "example.com",
            "v1",
            "default",
            "gadgets",
            {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}},
        )

        def gadget() -> dict[str, Any]:
            obj: dict[str, Any] = custom.get_namespaced_custom_object("example.com", "v1", "default", "gadgets", "g1")
            return obj

        wait_for(lambda: operator.count("create") == 1, timeout=60, what="the create handler")
        # kopf stores the handler's result in status (through /status) and holds the object with its finalizer.
        wait_for(lambda: gadget().get("status", {}).get("created") == {"size": 1}, timeout=60, what="handler status")
        assert gadget()["metadata"].get("finalizers")

        custom.patch_namespaced_custom_object("example.com", "v1", "default", "gadgets", "g1", {"spec": {"size": 2}})
        wait_for(lambda: operator.count("update") == 1, timeout=60, what="the update handler")

        custom.delete_namespaced_custom_object("example.com", "v1", "default", "gadgets", "g1")

        def gone() -> bool:
            try:
                gadget()
            except ApiException as exc:
                return exc.status == 404
            return False

        wait_for(gone, timeout=60, what="the finalizer to be released and the object deleted")
        assert operator.count("delete") == 1
    finally:
        operator.stop()
    assert operator.calls == Counter({"create": 1, "update": 1, "delete": 1})
