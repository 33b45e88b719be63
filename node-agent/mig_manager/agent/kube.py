"""The Kubernetes side of the agent, kept thin: its Node (read, watch, merge-patch), pods on the node (list, watch,
delete), Events, and the per-node ConfigMap. Objects are plain dicts (the API's JSON).

Every call has a request timeout and is retried a few times on transient errors (5xx, 429, connection errors); what
still fails raises TransientError, which the reconciler turns into a retry with back-off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .errors import TransientError

log = logging.getLogger("mig_manager.agent.kube")

T = TypeVar("T")
COMPONENT = "nvidia-mig-manager"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(TransientError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Conflict(ApiError):
    """409: the object changed since it was read (a resourceVersion precondition failed)."""


class NotFound(ApiError):
    """404."""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(exc: BaseException) -> tuple[str, int | None]:
    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        try:
            body = json.loads(exc.body) if exc.body else {}
            reason = body.get("message") or reason
        except (ValueError, TypeError, AttributeError):
            pass
        return f"{exc.status} {reason}".strip(), exc.status
    return f"{type(exc).__name__}: {exc}", None


def _retryable(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


class Kube:
    """The API calls the agent makes, for one node."""

    def __init__(
        self,
        api_client: Any,
        node_name: str,
        *,
        request_timeout: float = 10.0,
        retries: int = 3,
        retry_delay: float = 0.2,
    ) -> None:
        self.api_client = api_client
        self.core: Any = client.CoreV1Api(api_client)
        self.node_name = node_name
        self.request_timeout = request_timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.writes = 0  # successful create/patch/delete calls (for the bench)
        self._lock = threading.Lock()

    # -- plumbing -----------------------------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], *, write: bool = False) -> T:
        delay = self.retry_delay
        for attempt in range(self.retries + 1):
            try:
                result = fn()
            except Exception as exc:  # the client raises ApiException, urllib3 and socket errors
                text, status = _describe(exc)
                if status == 409:
                    raise Conflict(f"{what}: {text}", status) from None
                if status == 404:
                    raise NotFound(f"{what}: {text}", status) from None
                if not _retryable(status) or attempt == self.retries:
                    raise ApiError(f"{what}: {text}", status) from None
                log.info("%s failed (%s); retrying in %.2fs", what, text, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if write:
                with self._lock:
                    self.writes += 1
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(resp.data)
        return data

    # -- Node ---------------------------------------------------------------------------------------------------------

    def get_node(self) -> dict[str, Any]:
        return self._call(
            f"reading node {self.node_name}",
            lambda: self._json(
                self.core.read_node(self.node_name, _preload_content=False, _request_timeout=self.request_timeout)
            ),
        )

    def patch_node(self, patch: Mapping[str, Any], what: str = "") -> dict[str, Any]:
        """JSON merge patch of this Node (one write); a `metadata.resourceVersion` in it is a precondition."""
        return self._call(
            f"patching node {self.node_name}{' (' + what + ')' if what else ''}",
            lambda: self._json(
                self.core.patch_node(
                    self.node_name,
                    dict(patch),
                    _content_type=MERGE_PATCH,
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
            ),
            write=True,
        )

    def list_node(self) -> tuple[dict[str, Any] | None, str]:
        data = self._call(
            f"listing node {self.node_name}",
            lambda: self._json(
                self.core.list_node(
                    field_selector=f"metadata.name={self.node_name}",
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
            ),
        )
        items = data.get("items") or []
        return (items[0] if items else None), str(data.get("metadata", {}).get("resourceVersion", ""))

    def watch_node(self, resource_version: str, timeout: float) -> Iterator[tuple[str, dict[str, Any]]]:
        return self._watch(
            self.core.list_node,
            resource_version,
            timeout,
            field_selector=f"metadata.name={self.node_name}",
        )

    def _watch(
        self, func: Callable[..., Any], resource_version: str, timeout: float, **kwargs: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events (type, object) from `resource_version` for at most `timeout` seconds; raises ApiError (410: Gone)."""
        w: Any = watch.Watch()  # type: ignore[no-untyped-call]
        seconds = max(1, int(timeout + 0.999))
        try:
            for event in w.stream(
                func,
                resource_version=resource_version,
                timeout_seconds=seconds,
                allow_watch_bookmarks=True,
                deserialize=False,
                _request_timeout=(self.request_timeout, seconds + self.request_timeout),
                **kwargs,
            ):
                kind = str(event.get("type", ""))
                obj = event.get("object")
                if kind == "ERROR":
                    status = obj.get("code") if isinstance(obj, dict) else None
                    raise ApiError(f"watch: {obj}", status)
                if isinstance(obj, dict):
                    yield kind, obj
        except ApiError:
            raise
        except Exception as exc:
            text, status = _describe(exc)
            raise ApiError(f"watch: {text}", status) from None
        finally:
            w.stop()

    # -- Pods ---------------------------------------------------------------------------------------------------------

    def list_pods_on_node(self) -> tuple[list[dict[str, Any]], str]:
        """Every pod on this node, in every namespace, and the list's resourceVersion."""
        data = self._call(
            f"listing pods on node {self.node_name}",
            lambda: self._json(
                self.core.list_pod_for_all_namespaces(
                    field_selector=f"spec.nodeName={self.node_name}",
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
            ),
        )
        return list(data.get("items") or []), str(data.get("metadata", {}).get("resourceVersion", ""))

    def watch_pods_on_node(self, resource_version: str, timeout: float) -> Iterator[tuple[str, dict[str, Any]]]:
        return self._watch(
            self.core.list_pod_for_all_namespaces,
            resource_version,
            timeout,
            field_selector=f"spec.nodeName={self.node_name}",
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(
                f"deleting pod {namespace}/{name}",
                lambda: self.core.delete_namespaced_pod(
                    name, namespace, _preload_content=False, _request_timeout=self.request_timeout
                ),
                write=True,
            )

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(
            f"reading pod {namespace}/{name}",
            lambda: self._json(
                self.core.read_namespaced_pod(
                    name, namespace, _preload_content=False, _request_timeout=self.request_timeout
                )
            ),
        )

    # -- Events -------------------------------------------------------------------------------------------------------

    def post_event(self, node: Mapping[str, Any] | None, type_: str, reason: str, message: str) -> None:
        """An Event on this Node (namespace `default`, as the kubelet's node events); failures are only logged."""
        meta = (node or {}).get("metadata", {})
        now = now_rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{self.node_name}.", "namespace": "default"},
            "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": meta.get("uid", "")},
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._call(
                f"posting event {reason}",
                lambda: self.core.create_namespaced_event(
                    "default", body, _preload_content=False, _request_timeout=self.request_timeout
                ),
                write=True,
            )
        except TransientError as exc:
            log.warning("could not post event %s: %s", reason, exc)

    # -- ConfigMap ----------------------------------------------------------------------------------------------------

    def apply_configmap(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        data: Mapping[str, str],
        owner: Mapping[str, Any] | None,
    ) -> None:
        """Create the ConfigMap, or replace its labels, owner and data."""
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if owner is not None:
            meta["ownerReferences"] = [dict(owner)]
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}
        try:
            self._call(
                f"creating configmap {namespace}/{name}",
                lambda: self.core.create_namespaced_config_map(
                    namespace, body, _preload_content=False, _request_timeout=self.request_timeout
                ),
                write=True,
            )
        except Conflict:
            self._call(
                f"updating configmap {namespace}/{name}",
                lambda: self.core.patch_namespaced_config_map(
                    name,
                    namespace,
                    {
                        "metadata": {"labels": dict(labels), "ownerReferences": meta.get("ownerReferences")},
                        "data": dict(data),
                    },
                    _content_type=MERGE_PATCH,
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                ),
                write=True,
            )
