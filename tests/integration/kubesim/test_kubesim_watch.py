"""Watch semantics over real HTTP: resume without loss or repeat, selectors, WatchList, bookmarks, 410, timeouts."""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlparse

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubesim.server import Config, KubeSim
from kubesim.testing import kube_client, wait_for

NS = "default"
CMS = f"/api/v1/namespaces/{NS}/configmaps"


class RawWatch:
    """A watch stream read line by line on a thread; `None` in the queue marks the end of the stream."""

    def __init__(self, sim: KubeSim, path: str, **params: str) -> None:
        url = urlparse(sim.url)
        self.conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
        self.conn.request("GET", f"{path}?{urlencode({'watch': 'true', **params})}")
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.response:
                if line.strip():
                    self.events.put(json.loads(line))
        except (OSError, AttributeError, ValueError, http.client.HTTPException):
            pass
        self.events.put(None)

    def next(self, timeout: float = 30.0, bookmarks: bool = False) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no watch event arrived in time")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                raise AssertionError("no watch event arrived in time") from None
            if event is None or bookmarks or event["type"] != "BOOKMARK":
                return event

    def take(self, count: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(count):
            event = self.next()
            assert event is not None, f"stream ended after {out}"
            out.append((event["type"], event["object"]["metadata"]["name"]))
        return out

    def close(self) -> None:
        # Shut the socket down first: it wakes the reading thread, which holds the response's buffer lock.
        if self.conn.sock is not None:
            with contextlib.suppress(OSError):
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def _cm(name: str, **labels: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels or None), data={"v": "0"})


def test_resume_after_dropped_connection_loses_and_repeats_nothing(kubesim: KubeSim) -> None:
    core = client.CoreV1Api(kube_client(kubesim))
    core.create_namespaced_config_map(NS, _cm("x0"))
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    w = RawWatch(kubesim, CMS, resourceVersion=rv)
    core.create_namespaced_config_map(NS, _cm("x1"))
    core.create_namespaced_config_map(NS, _cm("x2"))
    first = [w.next(), w.next()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in first if e] == [("ADDED", "x1"), ("ADDED", "x2")]
    last_rv = first[-1]["object"]["metadata"]["resourceVersion"]  # type: ignore[index]
    assert kubesim.cut_watches() >= 1
    assert w.next() is None  # the server closed the stream
    # Changes while nobody watches.
    core.patch_namespaced_config_map("x1", NS, {"data": {"v": "1"}})
    core.create_namespaced_config_map(NS, _cm("x3"))
    core.delete_namespaced_config_map("x2", NS)
    resumed = RawWatch(kubesim, CMS, resourceVersion=last_rv)
    assert resumed.take(3) == [("MODIFIED", "x1"), ("ADDED", "x3"), ("DELETED", "x2")]
    core.create_namespaced_config_map(NS, _cm("x4"))
    assert resumed.take(1) == [("ADDED", "x4")]
    resumed.close()


def test_python_client_watch_resumes_itself_across_a_cut(kubesim: KubeSim) -> None:
    core = client.CoreV1Api(kube_client(kubesim))
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    done = threading.Event()

    def consume() -> None:
        for event in w.stream(core.list_namespaced_config_map, NS, resource_version=rv):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 6:
                break
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    for i in range(3):
        core.create_namespaced_config_map(NS, _cm(f"y{i}"))
    wait_for(lambda: len(seen) == 3, what="the first three events")
    kubesim.cut_watches()
    for i in range(3, 6):
        core.create_namespaced_config_map(NS, _cm(f"y{i}"))
    assert done.wait(60)
    assert seen == [("ADDED", f"y{i}") for i in range(6)]


def test_object_leaving_a_label_selector_is_deleted_for_that_watch(kubesim: KubeSim) -> None:
    core = client.CoreV1Api(kube_client(kubesim))
    w = RawWatch(kubesim, CMS, labelSelector="app=a", resourceVersion=str(kubesim.resource_version()))
    core.create_namespaced_config_map(NS, _cm("s1", app="a"))
    core.create_namespaced_config_map(NS, _cm("s2", app="b"))
    assert w.take(1) == [("ADDED", "s1")]
    core.patch_namespaced_config_map("s1", NS, {"metadata": {"labels": {"app": "b"}}})
    left = w.next()
    assert left is not None and left["type"] == "DELETED" and left["object"]["metadata"]["labels"] == {"app": "a"}
    core.patch_namespaced_config_map("s1", NS, {"data": {"v": "ignored"}})  # not matching: nothing
    core.patch_namespaced_config_map("s2", NS, {"metadata": {"labels": {"app": "a"}}})  # enters: ADDED
    assert w.take(1) == [("ADDED", "s2")]
    w.close()


def test_field_selector_watch(kubesim: KubeSim) -> None:
    core = client.CoreV1Api(kube_client(kubesim))
    w = RawWatch(kubesim, CMS, fieldSelector="metadata.name=f2", resourceVersion=str(kubesim.resource_version()))
    for name in ("f1", "f2", "f3"):
        core.create_namespaced_config_map(NS, _cm(name))
    core.delete_namespaced_config_map("f2", NS)
    assert w.take(2) == [("ADDED", "f2"), ("DELETED", "f2")]
    w.close()


def test_too_old_resource_version_is_410_gone() -> None:
    with KubeSim(Config(history_size=5)) as sim:
        core = client.CoreV1Api(kube_client(sim))
        for i in range(10):
            core.create_namespaced_config_map(NS, _cm(f"g{i}"))
        w = RawWatch(sim, CMS, resourceVersion="2")
        assert w.status == 200
        event = w.next()
        assert event is not None and event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        assert w.next() is None
        # A recent resourceVersion still resumes.
        recent = RawWatch(sim, CMS, resourceVersion=str(sim.resource_version() - 1))
        assert recent.take(1) == [("ADDED", "g9")]
        recent.close()
        # The Python client reports it as an ApiException with status 410.
        try:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version="2", timeout_seconds=5):
                pass
        except ApiException as exc:
            assert exc.status == 410
        else:
            raise AssertionError("expected 410 Gone")


def test_watchlist_sends_initial_events_then_the_end_bookmark(kubesim: KubeSim) -> None:
    core = client.CoreV1Api(kube_client(kubesim))
    for name in ("w1", "w2"):
        core.create_namespaced_config_map(NS, _cm(name, app="wl"))
    w = RawWatch(
        kubesim,
        CMS,
        sendInitialEvents="true",
        resourceVersionMatch="NotOlderThan",
        allowWatchBookmarks="true",
        labelSelector="app=wl",
    )
    assert w.take(2) == [("ADDED", "w1"), ("ADDED", "w2")]
    bookmark = w.next(bookmarks=True)
    assert bookmark is not None and bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert bookmark["object"]["kind"] == "ConfigMap"
    core.create_namespaced_config_map(NS, _cm("w3", app="wl"))
    assert w.take(1) == [("ADDED", "w3")]
    w.close()
    # Without resourceVersionMatch=NotOlderThan the request is invalid (422), never silently ignored.
    bad = RawWatch(kubesim, CMS, sendInitialEvents="true", allowWatchBookmarks="true")
    assert bad.status == 422


def test_periodic_bookmarks_carry_the_current_resource_version(kubesim: KubeSim) -> None:
    core = client.CoreV1Api(kube_client(kubesim))
    w = RawWatch(kubesim, CMS, allowWatchBookmarks="true", resourceVersion=str(kubesim.resource_version()))
    core.create_namespaced_config_map(NS, _cm("b1"))
    added = w.next()
    assert added is not None
    bookmark = w.next(bookmarks=True)
    assert bookmark is not None and bookmark["type"] == "BOOKMARK"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(added["object"]["metadata"]["resourceVersion"])
    w.close()


def test_timeout_seconds_ends_the_stream(kubesim: KubeSim) -> None:
    started = time.monotonic()
    w = RawWatch(kubesim, CMS, timeoutSeconds="1", resourceVersion=str(kubesim.resource_version()))
    assert w.next(timeout=30) is None
    assert time.monotonic() - started < 20


def test_watch_without_resource_version_starts_with_the_current_state(kubesim: KubeSim) -> None:
    core = client.CoreV1Api(kube_client(kubesim))
    core.create_namespaced_config_map(NS, _cm("c1"))
    w = RawWatch(kubesim, CMS)
    assert w.take(1) == [("ADDED", "c1")]
    core.delete_namespaced_config_map("c1", NS)
    assert w.take(1) == [("DELETED", "c1")]
    w.close()


def test_admin_endpoint_cuts_watches_of_one_resource(kubesim: KubeSim) -> None:
    cms = RawWatch(kubesim, CMS, resourceVersion=str(kubesim.resource_version()))
    secrets = RawWatch(kubesim, f"/api/v1/namespaces/{NS}/secrets", resourceVersion=str(kubesim.resource_version()))
    wait_for(lambda: kubesim.watcher_count() == 2, what="both watches open")
    req = urllib.request.Request(
        f"{kubesim.url}/kubesim/watches/cut", method="POST", data=json.dumps({"resource": "/configmaps"}).encode()
    )
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read()) == {"cut": 1}
    assert cms.next() is None
    client.CoreV1Api(kube_client(kubesim)).create_namespaced_secret(NS, {"metadata": {"name": "still-watched"}})
    assert secrets.take(1) == [("ADDED", "still-watched")]
    secrets.close()
