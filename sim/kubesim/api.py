"""The HTTP shell: aiohttp routes for discovery, OpenAPI, CRUD, patch, watch, subresources and the admin endpoints."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubesim import discovery, protobuf, tables
from kubesim.errors import ApiError, FieldError, KubeSimError, bad_request, invalid, method_not_allowed
from kubesim.faults import FaultInjector, FaultSpecError, rule_from_dict
from kubesim.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from kubesim.registry import APPLY, Registry, WriteOptions, parse_body
from kubesim.resources import ResourceType
from kubesim.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector
from kubesim.store import Event, Stored, Watcher, dumps

log = logging.getLogger("kubesim.api")

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    raw = body if isinstance(body, bytes) else dumps(body)
    resp = web.Response(body=raw, status=status, content_type=JSON)
    for warning in warnings or ():
        resp.headers.add("Warning", f'299 - "{warning}"')
    return resp


def error_response(err: ApiError) -> web.Response:
    resp = json_response(err.status(), status=err.code)
    if err.code == 429:
        resp.headers["Retry-After"] = "1"
    return resp


@dataclass
class Target:
    """A parsed resource URL."""

    rt: ResourceType
    namespace: str  # "" for cluster-scoped resources and for all-namespaces collections
    name: str
    subresource: str


class PodLogs:
    """Container logs the simulated kubelet would serve: appended by controllers or tests, read by `pods/log`.

    The kubelet calls `restarted` when a container starts again: its output so far becomes the `previous=true` log
    (as `kubectl logs --previous`), and the current log starts empty. At most `limit` lines are kept per container.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._lines: dict[tuple[str, str, str], list[str]] = {}
        self._previous: dict[tuple[str, str, str], list[str]] = {}
        self._changed = asyncio.Event()
        self.limit = limit

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def append(self, namespace: str, pod: str, container: str, text: str) -> None:
        lines = self._lines.setdefault((namespace, pod, container), [])
        lines.extend(text.splitlines())
        if len(lines) > self.limit + self.limit // 5:
            del lines[: len(lines) - self.limit]
        self._notify()

    def restarted(self, namespace: str, pod: str, container: str) -> None:
        key = (namespace, pod, container)
        self._previous[key] = self._lines.pop(key, [])
        self._notify()

    def lines(self, namespace: str, pod: str, container: str, previous: bool = False) -> list[str]:
        source = self._previous if previous else self._lines
        return list(source.get((namespace, pod, container), ()))

    async def wait(self, timeout: float) -> None:
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)

    def forget(self, namespace: str, pod: str) -> None:
        for store in (self._lines, self._previous):
            for key in [k for k in store if k[0] == namespace and k[1] == pod]:
                del store[key]


class ApiServer:
    def __init__(
        self,
        registry: Registry,
        faults: FaultInjector,
        logs: PodLogs,
        *,
        bookmark_interval: float = 5.0,
        address: str = "127.0.0.1:0",
        aggregated_discovery: bool = True,
        record_requests: bool = False,
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self.faults = faults
        self.logs = logs
        self.bookmark_interval = bookmark_interval
        self.address = address
        self.aggregated_discovery = aggregated_discovery
        # With Config.record_requests: [method, path and query, status, Accept, Content-Type] of every request.
        self.requests: list[list[Any]] | None = [] if record_requests else None
        self._stopping = False

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record])
        r = app.router
        r.add_get("/version", self.version)
        r.add_get("/healthz", self.ok)
        r.add_get("/readyz", self.ok)
        r.add_get("/livez", self.ok)
        r.add_get("/api", self.api_root)
        r.add_get("/apis", self.apis_root)
        r.add_get("/openapi/v3", self.openapi_root)
        r.add_get("/openapi/v3/{path:.*}", self.openapi_doc)
        r.add_get("/kubesim/faults", self.faults_list)
        r.add_post("/kubesim/faults", self.faults_add)
        r.add_delete("/kubesim/faults", self.faults_clear)
        r.add_delete("/kubesim/faults/{id}", self.faults_remove)
        r.add_post("/kubesim/watches/cut", self.watches_cut)
        r.add_post("/kubesim/logs/{namespace}/{pod}/{container}", self.logs_append)
        r.add_route("*", "/api/{path:.*}", self.resource_request)
        r.add_route("*", "/apis/{path:.*}", self.resource_request)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.requests is None:
            return await handler(request)
        entry = [
            request.method,
            request.path_qs,
            0,
            request.headers.get("Accept", ""),
            request.headers.get("Content-Type", ""),
        ]
        self.requests.append(entry)
        resp = await handler(request)
        entry[2] = resp.status
        return resp

    def stop(self) -> None:
        self._stopping = True
        self.store.close_watches()

    # ------------------------------------------------------------ discovery

    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.VERSION_INFO)

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def api_root(self, request: web.Request) -> web.Response:
        if self.aggregated_discovery and discovery.wants_aggregated(request.headers.get("Accept", "")):
            return self._aggregated(core=True)
        return json_response(discovery.api_versions(self.address))

    async def apis_root(self, request: web.Request) -> web.Response:
        if self.aggregated_discovery and discovery.wants_aggregated(request.headers.get("Accept", "")):
            return self._aggregated(core=False)
        return json_response(discovery.api_group_list(self.registry.group_versions()))

    def _aggregated(self, core: bool) -> web.Response:
        body = discovery.aggregated_discovery(self.registry.group_versions(), self.registry.types(), core)
        resp = web.Response(body=dumps(body))
        resp.headers["Content-Type"] = discovery.AGGREGATED_V2
        return resp

    async def openapi_root(self, request: web.Request) -> web.Response:
        return json_response(discovery.openapi_root(self.registry.group_versions()))

    async def openapi_doc(self, request: web.Request) -> web.Response:
        parts = request.match_info["path"].strip("/").split("/")
        if len(parts) == 2 and parts[0] == "api":
            group, version = "", parts[1]
        elif len(parts) == 3 and parts[0] == "apis":
            group, version = parts[1], parts[2]
        else:
            return error_response(ApiError(404, "NotFound", "the server could not find the requested resource"))
        types = self.registry.resources_of(group, version)
        if not types:
            return error_response(ApiError(404, "NotFound", "the server could not find the requested resource"))
        return json_response(discovery.openapi_document(group, version, types))

    # ------------------------------------------------------------ admin

    async def faults_list(self, request: web.Request) -> web.Response:
        return json_response({"rules": [r.to_dict() for r in self.faults.rules()]})

    async def faults_add(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
            rule = self.faults.add(rule_from_dict(data))
        except (ValueError, TypeError, FaultSpecError) as exc:
            return error_response(bad_request(str(exc)))
        return json_response(rule.to_dict(), status=201)

    async def faults_clear(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return json_response({"rules": []})

    async def faults_remove(self, request: web.Request) -> web.Response:
        if not self.faults.remove(int(request.match_info["id"])):
            return error_response(ApiError(404, "NotFound", "no such fault rule"))
        return json_response({"removed": int(request.match_info["id"])})

    async def watches_cut(self, request: web.Request) -> web.Response:
        raw = await request.read()
        data = json.loads(raw) if raw else {}
        gr = None
        if data.get("resource"):
            group, _, plural = str(data["resource"]).rpartition("/")
            gr = (group, plural)
        return json_response({"cut": self.store.close_watches(gr)})

    async def logs_append(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.logs.append(m["namespace"], m["pod"], m["container"], (await request.read()).decode())
        return json_response({"ok": True}, status=201)

    # ------------------------------------------------------------ resources

    async def resource_request(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as err:
            return error_response(err)
        except KubeSimError as err:
            return error_response(ApiError(400, "BadRequest", str(err)))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # the real server answers 500 InternalError, and so must a simulator with a bug
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(
                ApiError(
                    500, "InternalError", f"an error on the server ({exc!r}) has prevented the request from succeeding"
                )
            )

    def _parse(self, path: str) -> tuple[str, str, list[str]]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if parts[0] == "api":
            if len(parts) < 2 or parts[1] != "v1":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return "", "v1", parts[2:]
        if len(parts) < 3:
            return parts[1] if len(parts) > 1 else "", "", []
        return parts[1], parts[2], parts[3:]

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.registry.resource(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace = rest[1]
                rest = rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.registry.resource(group, version, rest[0])
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and name and not namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(rt, namespace, name, sub)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        group, version, rest = self._parse(request.path)
        if request.path.startswith("/apis") and not version:
            versions = self.registry.group_versions().get(group)
            if not group or not versions:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(discovery.api_group(group, versions))
        if not rest:
            types = self.registry.resources_of(group, version)
            if not types:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(discovery.api_resource_list(group, version, types))
        t = self._target(group, version, rest)
        q = request.query
        method = request.method
        watching = q.get("watch") in ("true", "1")
        verb = {
            "GET": ("watch" if watching else "list") if not t.name else "get",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection",
        }.get(method, "")
        if not verb:
            raise method_not_allowed()
        resource = f"{t.rt.plural}/{t.subresource}" if t.subresource else t.rt.plural
        fault = self.faults.check(verb, resource, t.namespace, t.name)
        if fault is not None:
            if fault.action == "drop":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)  # never reaches the client: the connection is gone
            reasons = {
                409: "Conflict",
                429: "TooManyRequests",
                500: "InternalError",
                503: "ServiceUnavailable",
                504: "Timeout",
            }
            raise ApiError(
                fault.status,
                reasons.get(fault.status, "InternalError"),
                f"kubesim fault injection: {verb} {resource} failed",
            )
        if t.subresource:
            return await self._subresource(request, t, verb)
        if verb == "list":
            return self._list(request, t)
        if verb == "watch":
            return await self._watch(request, t)
        if verb == "get":
            stored = self.registry.get(t.rt, t.namespace, t.name)
            if tables.wants_table(request.headers.get("Accept", "")):
                rv = stored.obj["metadata"]["resourceVersion"]
                return json_response(self._table(request, t.rt, [stored.obj], rv))
            return json_response(stored.raw)
        opts = self._write_options(request)
        if verb == "create":
            if t.rt.namespaced and not t.namespace:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            body = await self._body(request)
            stored = self.registry.create(t.rt, t.namespace, body, opts)
            return json_response(stored.raw, status=201, warnings=opts.warnings)
        if verb == "update":
            body = await self._body(request)
            stored = self.registry.update(t.rt, t.namespace, t.name, body, opts)
            return json_response(stored.raw, warnings=opts.warnings)
        if verb == "patch":
            content_type = request.content_type
            stored, created = self.registry.patch(t.rt, t.namespace, t.name, content_type, await request.read(), opts)
            return json_response(stored.raw, status=201 if created else 200, warnings=opts.warnings)
        if verb == "delete":
            options = await self._delete_options(request)
            stored, gone = self.registry.delete(t.rt, t.namespace, t.name, options, opts)
            if gone and t.rt.plural not in ("pods",) and not t.rt.custom:
                return json_response(_success(t.rt, stored))
            return json_response(stored.raw)
        if verb == "deletecollection":
            options = await self._delete_options(request)
            labels, fields = self._selectors(request, t.rt)
            items, _ = self.registry.list_objects(t.rt, t.namespace, labels, fields)
            deleted = []
            for item in items:
                stored, _ = self.registry.delete(t.rt, item.namespace, item.name, options, opts)
                deleted.append(stored.obj)
            return json_response(
                {
                    "kind": t.rt.list_kind,
                    "apiVersion": t.rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)},
                    "items": deleted,
                }
            )
        raise method_not_allowed()

    # ------------------------------------------------------------ helpers

    def _write_options(self, request: web.Request) -> WriteOptions:
        q = request.query
        dry = q.getall("dryRun", [])
        for value in dry:
            if value != "All":
                raise bad_request(f"Invalid dry run value: {value}; the only valid value is All")
        validation = q.get("fieldValidation", "")
        if validation not in ("", "Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{validation}"')
        return WriteOptions(
            dry_run=bool(dry),
            field_validation=validation,
            field_manager=q.get("fieldManager", ""),
            force=q.get("force") in ("true", "1"),
        )

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ctype = request.content_type
        if ctype == PROTOBUF:
            return protobuf.decode(raw)
        if ctype in (JSON, "application/yaml", "", "application/octet-stream", "text/plain"):
            return parse_body(raw)
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted "
            f"media types include: application/json, application/yaml, {PROTOBUF} (got {ctype})",
        )

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        raw = await request.read()
        if raw:
            if request.content_type == PROTOBUF:
                try:
                    options = protobuf.decode(raw)
                except protobuf.ProtobufError:
                    options = protobuf.decode_as(raw, "DeleteOptions")
            else:
                parsed = parse_body(raw)
                options = parsed if isinstance(parsed, dict) else {}
        q = request.query
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        if "gracePeriodSeconds" in q:
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "orphanDependents" in q:
            options["orphanDependents"] = q["orphanDependents"] == "true"
        return options

    def _selectors(self, request: web.Request, rt: ResourceType) -> tuple[LabelSelector, FieldSelector]:
        q = request.query
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), rt.field_labels, rt.kind)
        return labels, fields

    # ------------------------------------------------------------ list

    def _list(self, request: web.Request, t: Target) -> web.Response:
        labels, fields = self._selectors(request, t.rt)
        items, rv = self.registry.list_objects(t.rt, t.namespace, labels, fields)
        q = request.query
        list_meta: dict[str, Any] = {"resourceVersion": str(rv)}
        token = q.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                after = (str(state["ns"]), str(state["name"]))
                list_meta["resourceVersion"] = str(state["rv"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
            items = [s for s in items if (s.namespace, s.name) > after]
        limit = int(q.get("limit", "0") or 0)
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]
            state = {"rv": int(list_meta["resourceVersion"]), "ns": last.namespace, "name": last.name}
            list_meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            list_meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if tables.wants_table(request.headers.get("Accept", "")):
            return json_response(self._table(request, t.rt, [s.obj for s in items], "", list_meta))
        head = dumps({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version, "metadata": list_meta})
        body = head[:-1] + b',"items":[' + b",".join(s.raw for s in items) + b"]}"
        return json_response(body)

    # ------------------------------------------------------------ watch

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        labels, fields = self._selectors(request, t.rt)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        initial = q.get("sendInitialEvents") in ("true", "1")
        rv_param = q.get("resourceVersion", "")
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        if initial:
            if q.get("resourceVersionMatch") != "NotOlderThan":
                raise invalid(
                    "ListOptions",
                    "",
                    "meta.k8s.io",
                    [
                        _field_error(
                            "resourceVersionMatch",
                            "FieldValueForbidden",
                            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                        )
                    ],
                )
            if not bookmarks:
                raise invalid(
                    "ListOptions",
                    "",
                    "meta.k8s.io",
                    [
                        _field_error(
                            "allowWatchBookmarks",
                            "FieldValueForbidden",
                            "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                        )
                    ],
                )
        elif q.get("resourceVersionMatch"):
            raise invalid(
                "ListOptions",
                "",
                "meta.k8s.io",
                [
                    _field_error(
                        "resourceVersionMatch",
                        "FieldValueForbidden",
                        "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    )
                ],
            )
        gone: ApiError | None = None
        watcher: Watcher | None = None
        snapshot: list[Stored] = []
        start_rv = self.store.rv
        try:
            if initial or rv_param in ("", "0"):
                # Both "start at most recent" and WatchList begin with synthetic ADDED events of the current state.
                snapshot, start_rv = self.registry.list_objects(t.rt, t.namespace, labels, fields)
                watcher = self.store.watch(t.rt.group_resource, t.namespace)
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise bad_request(f"invalid resource version: {rv_param}") from None
                watcher = self.store.watch(t.rt.group_resource, t.namespace, since)
        except ApiError as err:
            if err.code != 410:
                raise
            gone = err
        resp = web.StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
        except ConnectionError:  # the client went away (a process that was stopped) before the stream began
            if watcher is not None:
                self.store.unwatch(watcher)
            return resp
        if gone is not None or watcher is None:
            assert gone is not None
            await resp.write(dumps({"type": "ERROR", "object": gone.status()}) + b"\n")
            return resp
        try:
            await self._stream(
                request, resp, t, watcher, labels, fields, snapshot, start_rv, initial, bookmarks, timeout
            )
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.store.unwatch(watcher)
        return resp

    async def _stream(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        t: Target,
        watcher: Watcher,
        labels: LabelSelector,
        fields: FieldSelector,
        snapshot: list[Stored],
        start_rv: int,
        initial: bool,
        bookmarks: bool,
        timeout: float | None,
    ) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        first = [True]

        def render(kind: str, stored: Stored) -> bytes:
            if not as_table:
                return _line(kind, stored)
            table = self._table(
                request, t.rt, [stored.obj], stored.obj["metadata"]["resourceVersion"], definitions=first[0]
            )
            first[0] = False
            return dumps({"type": kind, "object": table}) + b"\n"

        if snapshot:
            await resp.write(b"".join(render("ADDED", s) for s in snapshot))
        if initial:
            await resp.write(self._bookmark(t.rt, start_rv, initial_end=True))
        filtering = not (labels.empty and fields.empty)
        last_sent = time.monotonic()
        queue = watcher.queue
        while not self._stopping:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            wait = 1.0 if deadline is None else min(1.0, deadline - now)
            try:
                event = queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    event = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        return
                    if bookmarks and time.monotonic() - last_sent >= self.bookmark_interval:
                        await resp.write(self._bookmark(t.rt, self.store.rv))
                        last_sent = time.monotonic()
                    continue
            if event is None:
                return
            chunks: list[bytes] = []
            while event is not None:
                line = self._render(t.rt, event, labels, fields, filtering, render)
                if line is not None:
                    chunks.append(line)
                try:
                    event = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if chunks:
                await resp.write(b"".join(chunks))
                last_sent = time.monotonic()
            if event is None:
                return

    def _table(
        self,
        request: web.Request,
        rt: ResourceType,
        objects: list[dict[str, Any]],
        rv: str,
        list_meta: dict[str, Any] | None = None,
        definitions: bool = True,
    ) -> dict[str, Any]:
        crd = self.registry.crd_of(rt) if rt.custom else None
        include = request.query.get("includeObject", "Metadata")
        served = [dict(o, apiVersion=rt.api_version) if rt.custom else o for o in objects]
        return tables.table(
            rt,
            served,
            resource_version=rv,
            include_object=include,
            crd=crd,
            definitions=definitions,
            list_meta=list_meta,
        )

    def _bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return (
            dumps({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}})
            + b"\n"
        )

    def _render(
        self,
        rt: ResourceType,
        event: Event,
        labels: LabelSelector,
        fields: FieldSelector,
        filtering: bool,
        render: Callable[[str, Stored], bytes] = lambda kind, stored: _line(kind, stored),
    ) -> bytes | None:
        if not filtering:
            return render(event.type, self.registry.serve(rt, event.new))

        def matches(stored: Stored | None) -> bool:
            if stored is None:
                return False
            obj = stored.obj
            return labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)

        new_ok = matches(event.new)
        if event.type == "ADDED":
            return render("ADDED", self.registry.serve(rt, event.new)) if new_ok else None
        if event.type == "DELETED":
            return render("DELETED", self.registry.serve(rt, event.new)) if new_ok or matches(event.old) else None
        old_ok = matches(event.old)
        if new_ok and old_ok:
            return render("MODIFIED", self.registry.serve(rt, event.new))
        if new_ok:
            return render("ADDED", self.registry.serve(rt, event.new))
        if old_ok and event.old is not None:
            # The object left the selector: the watcher sees it deleted, at the event's resourceVersion.
            left = event.old.copy()
            left["metadata"]["resourceVersion"] = str(event.rv)
            return render("DELETED", self.registry.serve(rt, Stored(left)))
        return None

    # ------------------------------------------------------------ subresources

    async def _subresource(self, request: web.Request, t: Target, verb: str) -> web.StreamResponse:
        sub = t.subresource
        rt = t.rt
        if sub == "status":
            if verb == "get":
                return json_response(self.registry.get(rt, t.namespace, t.name).raw)
            opts = self._write_options(request)
            if verb == "update":
                body = await self._body(request)
                stored = self.registry.update(rt, t.namespace, t.name, body, opts, subresource="status")
                return json_response(stored.raw, warnings=opts.warnings)
            if verb == "patch":
                stored, _ = self.registry.patch(
                    rt, t.namespace, t.name, request.content_type, await request.read(), opts, subresource="status"
                )
                return json_response(stored.raw, warnings=opts.warnings)
        elif sub == "scale":
            current = self.registry.get(rt, t.namespace, t.name)
            if verb == "get":
                return json_response(self.registry.scale_of(rt, current))
            opts = self._write_options(request)
            scale = self.registry.scale_of(rt, current)
            if verb == "update":
                new_scale = await self._body(request)
            elif verb == "patch":
                new_scale = self._patch_document(scale, request.content_type, await request.read())
            else:
                raise method_not_allowed()
            stored = self.registry.write_scale(rt, t.namespace, t.name, new_scale, opts)
            return json_response(self.registry.scale_of(rt, stored))
        elif sub == "log" and verb == "get":
            return await self._pod_log(request, t)
        elif sub == "eviction" and verb == "create":
            body = await self._body(request)
            self.registry.get(rt, t.namespace, t.name)
            options = (body or {}).get("deleteOptions") or {}
            self.registry.delete(rt, t.namespace, t.name, options, self._write_options(request))
            return json_response(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, status=201
            )
        elif sub == "finalize" and verb == "update":
            body = await self._body(request)
            current = self.registry.get(rt, t.namespace, t.name)
            new = current.copy()
            new.setdefault("spec", {})["finalizers"] = ((body or {}).get("spec") or {}).get("finalizers") or []
            stored = self.registry.update(rt, t.namespace, t.name, new, self._write_options(request))
            return json_response(stored.raw)
        raise method_not_allowed()

    def _patch_document(self, doc: dict[str, Any], content_type: str, raw: bytes) -> Any:
        try:
            body = parse_body(raw)
            if content_type == "application/json-patch+json":
                return json_patch(doc, body)
            if content_type == "application/merge-patch+json":
                return merge_patch(doc, body)
            if content_type == "application/strategic-merge-patch+json":
                return strategic_merge_patch(doc, body)
            if content_type == APPLY:
                return merge_patch(doc, body)
        except PatchError as exc:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
            ) from None
        raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {content_type}")

    async def _pod_log(self, request: web.Request, t: Target) -> web.StreamResponse:
        pod = self.registry.get(t.rt, t.namespace, t.name).obj
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        q = request.query
        container = q.get("container")
        if not container:
            if len(containers) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {t.name}, choose one of: "
                    f"[{' '.join(str(c) for c in containers)}]"
                )
            container = str(containers[0])
        elif container not in containers:
            raise bad_request(f"container {container} is not valid for pod {t.name}")
        previous = q.get("previous") in ("true", "1")
        lines = self.logs.lines(t.namespace, t.name, container, previous)
        status: dict[str, Any] = next(
            (c for c in (pod.get("status") or {}).get("containerStatuses") or [] if c.get("name") == container), {}
        )
        if previous and not lines and not status.get("lastState"):
            raise bad_request(f'previous terminated container "{container}" in pod "{t.name}" not found')
        waiting = (status.get("state") or {}).get("waiting") or {}
        if not previous and not lines and waiting.get("reason") in ("ContainerCreating", "PodInitializing"):
            raise bad_request(f'container "{container}" in pod "{t.name}" is waiting to start: {waiting["reason"]}')
        tail = int(q["tailLines"]) if q.get("tailLines") else None
        shown = lines[-tail:] if tail is not None and tail >= 0 else lines
        if tail == 0:
            shown = []
        if q.get("follow") not in ("true", "1") or previous:
            text = "".join(line + "\n" for line in shown)
            return web.Response(text=text, content_type="text/plain")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
        except ConnectionError:
            return resp
        sent = len(lines)
        try:
            if shown:
                await resp.write("".join(line + "\n" for line in shown).encode())
            while not self._stopping:
                if self.store.get(t.rt.group_resource, t.namespace, t.name) is None:
                    break
                if request.transport is None or request.transport.is_closing():
                    break
                await self.logs.wait(1.0)
                lines = self.logs.lines(t.namespace, t.name, container)
                if len(lines) < sent:
                    break  # the container restarted: a real follow ends with the container it followed
                if len(lines) > sent:
                    await resp.write("".join(line + "\n" for line in lines[sent:]).encode())
                    sent = len(lines)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp


def _line(kind: str, stored: Stored) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + stored.raw + b"}\n"


def _success(rt: ResourceType, stored: Stored) -> dict[str, Any]:
    details: dict[str, Any] = {"name": stored.name, "kind": rt.plural, "uid": stored.obj["metadata"].get("uid")}
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _field_error(path: str, reason: str, message: str) -> FieldError:
    return FieldError(path, reason, message)
