"""The store and registry without HTTP: resourceVersions, watch replay, bounded history, write semantics."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.errors import ApiError
from kubesim.registry import Registry, WriteOptions
from kubesim.store import Store

CMS = ("", "configmaps")


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}, "data": data}


async def test_resource_versions_increase_and_watches_replay_after_a_version() -> None:
    store = Store()
    first = store.put(CMS, _cm("a"))
    second = store.put(CMS, _cm("b"))
    third = store.put(CMS, _cm("a", k="v"))
    assert first.rv < second.rv < third.rv == store.rv
    watcher = store.watch(CMS, "ns", since=first.rv)
    events = [watcher.queue.get_nowait() for _ in range(2)]
    assert [(e.type, e.new.name) for e in events] == [("ADDED", "b"), ("MODIFIED", "a")]
    assert events[1].old is first
    store.remove(CMS, "ns", "b")
    deleted = watcher.queue.get_nowait()
    assert deleted is not None and deleted.type == "DELETED" and deleted.new.rv == store.rv
    assert watcher.queue.empty()


async def test_history_is_bounded_and_older_versions_are_gone() -> None:
    store = Store(history_size=3)
    for i in range(6):
        store.put(CMS, _cm(f"c{i}"))
    assert len(store.history()) == 3
    with pytest.raises(ApiError) as exc:
        store.watch(CMS, since=1)
    assert exc.value.code == 410 and exc.value.reason == "Expired"
    watcher = store.watch(CMS, since=store.compacted_rv)
    assert watcher.queue.qsize() == 3


async def test_watches_are_scoped_and_can_be_cut() -> None:
    store = Store()
    other_ns = store.watch(CMS, "elsewhere")
    everywhere = store.watch(CMS)
    secrets = store.watch(("", "secrets"))
    store.put(CMS, _cm("a"))
    assert other_ns.queue.empty() and secrets.queue.empty() and everywhere.queue.qsize() == 1
    assert store.close_watches(CMS) == 2
    everywhere.queue.get_nowait()
    assert everywhere.queue.get_nowait() is None


async def test_registry_rules() -> None:
    registry = Registry(Store())
    ns_type = registry.resource("", "v1", "namespaces")
    cm_type = registry.resource("", "v1", "configmaps")
    assert ns_type is not None and cm_type is not None
    registry.create(ns_type, "", {"metadata": {"name": "ns"}}, WriteOptions())
    created = registry.create(cm_type, "ns", _cm("a", k="1"), WriteOptions())
    meta = created.obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert "generation" not in meta  # as on the real server, ConfigMaps carry no generation
    # A no-op update keeps the resourceVersion and sends no event.
    same = registry.update(cm_type, "ns", "a", _cm("a", k="1"), WriteOptions())
    assert same.rv == created.rv
    # dryRun never persists.
    registry.create(cm_type, "ns", _cm("b"), WriteOptions(dry_run=True))
    assert registry.store.get(CMS, "ns", "b") is None
    # Unknown fields: Strict refuses, the default warns.
    with pytest.raises(ApiError) as strict:
        registry.create(cm_type, "ns", {**_cm("c"), "bogus": 1}, WriteOptions(field_validation="Strict"))
    assert strict.value.code == 400 and 'unknown field "bogus"' in strict.value.message
    warn = WriteOptions()
    registry.create(cm_type, "ns", {**_cm("d"), "bogus": 1}, warn)
    assert warn.warnings == ['unknown field "bogus"']
    # Secrets: stringData becomes base64 data.
    secret_type = registry.resource("", "v1", "secrets")
    assert secret_type is not None
    secret = registry.create(secret_type, "ns", {"metadata": {"name": "s"}, "stringData": {"p": "hi"}}, WriteOptions())
    assert secret.obj["data"] == {"p": "aGk="} and "stringData" not in secret.obj and secret.obj["type"] == "Opaque"


async def test_rewriting_an_unchanged_crd_is_a_no_op() -> None:
    ticks = iter(range(1000))
    registry = Registry(Store(), clock=lambda: f"2026-01-01T00:00:{next(ticks) % 60:02d}Z")  # every call differs
    crd_type = registry.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crd_type is not None
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "Thing", "plural": "things"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    created = registry.create(crd_type, "", dict(crd), WriteOptions())
    assert registry.resource("example.com", "v1", "things") is not None
    again = registry.update(crd_type, "", "things.example.com", dict(crd), WriteOptions())
    assert again.rv == created.rv


async def test_a_uid_in_the_body_is_a_precondition() -> None:
    registry = Registry(Store())
    ns_type = registry.resource("", "v1", "namespaces")
    cm_type = registry.resource("", "v1", "configmaps")
    assert ns_type is not None and cm_type is not None
    registry.create(ns_type, "", {"metadata": {"name": "ns"}}, WriteOptions())
    registry.create(cm_type, "ns", _cm("a"), WriteOptions())
    stale = _cm("a", k="2")
    stale["metadata"]["uid"] = "someone-else"
    with pytest.raises(ApiError) as exc:
        registry.update(cm_type, "ns", "a", stale, WriteOptions())
    assert exc.value.code == 409 and "UID in precondition" in exc.value.message
