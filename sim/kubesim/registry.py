"""API semantics over the store: create, update, patch, delete and the rules the real API server applies to them.

Stamps (uid, creationTimestamp, generation), resourceVersion preconditions, status subresource rules, finalizers and
deletionTimestamp, generateName, dryRun, field validation, CRDs becoming live resources, and server-side apply. Runs on
the server's event loop like the store; no method awaits.
"""

from __future__ import annotations

import base64
import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from kubesim import crd as crdlib
from kubesim import schemas, validation
from kubesim.errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    unsupported_media_type,
)
from kubesim.patch import PatchError, apply_merge, json_patch, merge_patch, strategic_merge_patch
from kubesim.resources import BUILTIN, METADATA_FIELDS, TOP_LEVEL_FIELDS, ResourceType
from kubesim.selectors import FieldSelector, LabelSelector, format_label_selector
from kubesim.store import GroupResource, Store, Stored

NAMESPACES: GroupResource = ("", "namespaces")
PODS: GroupResource = ("", "pods")
CRDS: GroupResource = ("apiextensions.k8s.io", "customresourcedefinitions")

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = ""  # Strict, Warn, Ignore or "" (the real default, Warn)
    field_manager: str = ""
    force: bool = False
    warnings: list[str] = field(default_factory=list)


class Registry:
    """Every resource type served, and the write semantics over the store."""

    def __init__(self, store: Store, clock: Callable[[], str] = now_rfc3339) -> None:
        self.store = store
        self.clock = clock
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        self._applied: dict[tuple[str, str], dict[str, Any]] = {}
        self._listeners: list[Callable[[], None]] = []
        for rt in BUILTIN:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    # ------------------------------------------------------------ types

    def on_types_changed(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def resource(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions by group, in registration order; the first is the preferred version."""
        result: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return result

    def resources_of(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and rt.version == version]

    def any_type(self, gr: GroupResource) -> ResourceType | None:
        return next((rt for rt in self._types.values() if rt.group_resource == gr), None)

    def kind_for(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return next(
            (rt for rt in self._types.values() if rt.group == group and rt.version == version and rt.kind == kind), None
        )

    def crd_of(self, rt: ResourceType) -> dict[str, Any] | None:
        stored = self.store.get(CRDS, "", f"{rt.plural}.{rt.group}")
        return stored.obj if stored else None

    def _register_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        for old in self._crd_types.pop(name, []):
            self._types.pop((old.group, old.version, old.plural), None)
        types = crdlib.crd_resource_types(crd)
        self._crd_types[name] = types
        for rt in types:
            self._types[(rt.group, rt.version, rt.plural)] = rt
        for callback in self._listeners:
            callback()

    def _unregister_crd(self, name: str) -> None:
        for old in self._crd_types.pop(name, []):
            self._types.pop((old.group, old.version, old.plural), None)
        for callback in self._listeners:
            callback()

    def restore_crds(self) -> None:
        for stored in self.store.items(CRDS):
            self._register_crd(stored.obj)

    # ------------------------------------------------------------ reads

    def serve(self, rt: ResourceType, stored: Stored) -> Stored:
        """The object as this version serves it (custom resources are stored once, served under each version)."""
        if rt.custom and stored.obj.get("apiVersion") != rt.api_version:
            obj = dict(stored.obj)
            obj["apiVersion"] = rt.api_version
            return Stored(obj)
        return stored

    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.store.get(rt.group_resource, namespace, name)
        if stored is None:
            raise not_found(rt.plural, name, rt.group)
        return self.serve(rt, stored)

    def list_objects(
        self, rt: ResourceType, namespace: str, labels: LabelSelector, fields: FieldSelector
    ) -> tuple[list[Stored], int]:
        name = fields.name()
        if name is not None and namespace:
            one = self.store.get(rt.group_resource, namespace, name)
            candidates = [one] if one else []
        else:
            candidates = self.store.items(rt.group_resource, namespace)
        items = [
            self.serve(rt, s)
            for s in candidates
            if (labels.empty or labels.matches(s.obj["metadata"].get("labels")))
            and (fields.empty or fields.matches(s.obj))
        ]
        return items, self.store.rv

    # ------------------------------------------------------------ create

    def create(self, rt: ResourceType, namespace: str, body: Any, opts: WriteOptions) -> Stored:
        obj = self._check_body(rt, clone(body))  # the store keeps what it is given: never the caller's dicts
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        self._place(rt, namespace, meta)
        self._check_fields(rt, obj, opts)
        if rt.namespaced:
            self._check_namespace_open(rt, namespace, meta.get("name") or meta.get("generateName", ""))
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise invalid(
                    rt.kind,
                    "",
                    rt.group,
                    [
                        FieldError(
                            "metadata.name", "FieldValueRequired", "Required value: name or generateName is required"
                        )
                    ],
                )
            for _ in range(20):
                candidate = prefix + "".join(random.choice(_NAME_CHARS) for _ in range(5))
                if self.store.get(rt.group_resource, namespace if rt.namespaced else "", candidate) is None:
                    meta["name"] = candidate
                    break
        name = str(meta["name"])
        self._validate_meta(rt, meta, name)
        if self.store.get(rt.group_resource, meta.get("namespace", ""), name) is not None:
            raise already_exists(rt.plural, name, rt.group)
        for key in ("resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.clock()
        if _tracks_generation(rt):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rt.has_status and not rt.status_on_create:
            obj.pop("status", None)
        obj = self._prepare(rt, obj, None, opts)
        self._validate_builtin(rt, obj, None)
        if opts.dry_run:
            return self.serve(rt, Stored(obj))
        stored = self.store.put(rt.group_resource, obj)
        if rt.group_resource == CRDS:
            self._register_crd(stored.obj)
        return self.serve(rt, stored)

    def _check_body(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if api_version is not None and kind is not None and (kind != rt.kind or api_version != rt.api_version):
            # Custom resources may be written under any served version of their CRD.
            same_crd = rt.custom and kind == rt.kind and api_version.rpartition("/")[0] == rt.group
            if not same_crd:
                raise bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API "
                    f"version ({rt.api_version})"
                    if kind == rt.kind
                    else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
                )
        body["apiVersion"] = rt.storage_api_version() if rt.custom else rt.api_version
        body["kind"] = rt.kind
        return body

    def _place(self, rt: ResourceType, namespace: str, meta: dict[str, Any]) -> None:
        if rt.namespaced:
            given = meta.get("namespace")
            if given and given != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)

    def _check_namespace_open(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise forbidden(
                f'{rt.qualified()} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated"
            )

    def _validate_meta(self, rt: ResourceType, meta: dict[str, Any], name: str) -> None:
        errs: list[FieldError] = []
        if rt.group == "rbac.authorization.k8s.io":
            if name in (".", "..") or "/" in name or "%" in name:
                errs.append(
                    FieldError(
                        "metadata.name", "FieldValueInvalid", f"Invalid value: \"{name}\": may not contain '/' or '%'"
                    )
                )
        elif rt.plural in ("namespaces", "services"):
            if len(name) > 63 or not _LABEL.match(name):
                errs.append(FieldError("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {LABEL_MSG}'))
        elif len(name) > 253 or not _SUBDOMAIN.match(name):
            errs.append(FieldError("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {SUBDOMAIN_MSG}'))
        labels = meta.get("labels")
        if labels is not None:
            errs += validation.label_errors(labels)
        annotations = meta.get("annotations")
        if annotations is not None and (
            not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values())
        ):
            errs.append(
                FieldError(
                    "metadata.annotations", "FieldValueInvalid", "Invalid value: annotations must be a map of strings"
                )
            )
        if errs:
            raise invalid(rt.kind, name, rt.group, errs)

    def _validate_builtin(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if rt.custom:
            return
        if rt.group_resource == ("", "secrets"):
            problem = validation.undecodable_secret_data(obj)
            if problem:
                raise bad_request(problem)
        errs = validation.validate_builtin(rt, obj, old)
        if errs:
            raise invalid(rt.kind, obj["metadata"].get("name", ""), rt.group, errs)

    def _check_fields(self, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions) -> None:
        """fieldValidation for built-in kinds (custom kinds are checked against their CRD schema when prepared)."""
        if rt.custom or opts.field_validation == "Ignore":
            return
        schema = schemas.kind_schema(rt.group, rt.version, rt.kind)
        if schema is not None:
            self._report_unknown(schemas.unknown_fields(obj, schema), opts)
            return
        allowed = TOP_LEVEL_FIELDS.get(rt.kind)
        unknown: list[str] = []
        if allowed is not None:
            unknown += [k for k in obj if k not in allowed and k not in ("apiVersion", "kind", "metadata")]
        meta = obj.get("metadata") or {}
        unknown += [f"metadata.{k}" for k in meta if k not in METADATA_FIELDS]
        self._report_unknown(unknown, opts)

    @staticmethod
    def _report_unknown(unknown: list[str], opts: WriteOptions) -> None:
        if not unknown:
            return
        text = ", ".join(f'unknown field "{u}"' for u in unknown)
        if opts.field_validation == "Strict":
            raise bad_request(f"strict decoding error: {text}")
        if opts.field_validation != "Ignore":
            opts.warnings.extend(f'unknown field "{u}"' for u in unknown)

    # ------------------------------------------------------------ kind-specific preparation

    def _prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, opts: WriteOptions
    ) -> dict[str, Any]:
        """Per-kind strategy: defaults, derived fields and validation, on create (old is None) and update."""
        if rt.custom and rt.schema is not None:
            obj, pruned, errs = crdlib.prepare_custom_object(obj, rt.schema)
            if pruned and opts.field_validation in ("Strict", "Warn", ""):
                self._report_unknown(pruned, opts)
            if errs:
                raise invalid(rt.kind, obj["metadata"].get("name", ""), rt.group, errs)
            return obj
        gr = rt.group_resource
        if gr == NAMESPACES:
            spec = obj.setdefault("spec", {})
            spec.setdefault(
                "finalizers", ["kubernetes"] if old is None else (old.get("spec") or {}).get("finalizers", [])
            )
            if old is None:
                obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif gr == CRDS:
            errs = crdlib.validate_crd(obj)
            if errs:
                raise invalid(rt.kind, obj["metadata"].get("name", ""), rt.group, errs)
            if old is not None:
                old_spec = old.get("spec") or {}
                new_spec = obj.get("spec") or {}
                for key in ("group", "scope"):
                    if old_spec.get(key) != new_spec.get(key):
                        raise invalid(
                            rt.kind,
                            obj["metadata"]["name"],
                            rt.group,
                            [
                                FieldError(
                                    f"spec.{key}",
                                    "FieldValueInvalid",
                                    f'Invalid value: "{new_spec.get(key)}": field is immutable',
                                )
                            ],
                        )
            obj["status"] = crdlib.crd_status(obj, self.clock())
        elif gr == ("", "secrets"):
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                data = obj.setdefault("data", {}) or {}
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
                obj["data"] = data
            obj.setdefault("type", "Opaque")
        elif gr == ("", "pods") and old is None:
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            obj.setdefault("spec", {}).setdefault("restartPolicy", "Always")
        elif gr == ("", "services") and old is None:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if "clusterIP" not in spec:
                ip = f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            obj["status"] = {"loadBalancer": {}}
        elif gr == ("apps", "deployments"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault(
                "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
            )
        elif gr == ("apps", "replicasets"):
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        elif gr == ("apps", "daemonsets"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault(
                "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
            )
        elif gr == ("batch", "jobs"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("parallelism", 1)
            spec.setdefault("completions", 1)
            spec.setdefault("backoffLimit", 6)
        return obj

    # ------------------------------------------------------------ update

    def update(
        self, rt: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions, subresource: str = ""
    ) -> Stored:
        current = self.store.get(rt.group_resource, namespace, name)
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        obj = self._check_body(rt, clone(body))
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        meta["name"] = name
        self._place(rt, namespace, meta)
        _check_preconditions(rt, current, meta)
        self._check_fields(rt, obj, opts)
        return self._commit_update(rt, current, obj, opts, subresource)

    def _commit_update(
        self, rt: ResourceType, current: Stored, new: dict[str, Any], opts: WriteOptions, subresource: str
    ) -> Stored:
        old = current.obj
        name = current.name
        if subresource == "status":
            result = current.copy()
            if "status" in new and new["status"] is not None:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            if rt.custom and rt.schema is not None:
                result = self._prepare(rt, result, old, opts)
        else:
            result = new
            meta = result.setdefault("metadata", {})
            old_meta = old["metadata"]
            for key in (
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            for key in ("selfLink", "managedFields"):
                meta.pop(key, None)
            if rt.has_status:
                if "status" in old:
                    result["status"] = old["status"]
                else:
                    result.pop("status", None)
            self._validate_meta(rt, meta, name)
            result = self._prepare(rt, result, old, opts)
            self._validate_builtin(rt, result, old)
            if old_meta.get("deletionTimestamp"):
                added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
                if added:
                    shown = ", ".join(f'"{f}"' for f in added)
                    raise invalid(
                        rt.kind,
                        name,
                        rt.group,
                        [
                            FieldError(
                                "metadata.finalizers",
                                "FieldValueForbidden",
                                f"Forbidden: no new finalizers can be added if the object is being deleted, found new "
                                f"finalizers []string{{{shown}}}",
                            )
                        ],
                    )
            if _tracks_generation(rt) and _spec_changed(rt, old, result):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if result == old:
            return self.serve(rt, current)  # a no-op write keeps its resourceVersion and sends no event
        if opts.dry_run:
            return self.serve(rt, Stored(result))
        result_meta = result["metadata"]
        if (
            result_meta.get("deletionTimestamp")
            and not result_meta.get("finalizers")
            and not result_meta.get("deletionGracePeriodSeconds")
            and rt.group_resource != NAMESPACES
        ):
            stored = self.store.remove(rt.group_resource, current.namespace, name, final=result)
            self._after_delete(rt, stored)
            return self.serve(rt, stored)
        stored = self.store.put(rt.group_resource, result)
        if rt.group_resource == CRDS:
            self._register_crd(stored.obj)
        return self.serve(rt, stored)

    # ------------------------------------------------------------ patch

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        opts: WriteOptions,
        subresource: str = "",
    ) -> tuple[Stored, bool]:
        """Apply a patch; returns the result and whether it created the object (server-side apply only)."""
        current = self.store.get(rt.group_resource, namespace, name)
        if content_type == APPLY:
            return self._apply(rt, namespace, name, current, body, opts, subresource)
        if content_type not in (MERGE, JSON_PATCH, STRATEGIC):
            raise unsupported_media_type(content_type)
        if content_type == STRATEGIC and rt.custom:
            raise unsupported_media_type(content_type)
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        base = current.copy()
        try:
            if content_type == JSON_PATCH:
                new = json_patch(base, patch)
            elif content_type == MERGE:
                if not isinstance(patch, dict):
                    raise PatchError("a merge patch must be a JSON object")
                new = merge_patch(base, patch)
            else:
                if not isinstance(patch, dict):
                    raise PatchError("a strategic merge patch must be a JSON object")
                new = strategic_merge_patch(base, patch)
        except PatchError as exc:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {exc}",
                details={"causes": [{"reason": "FieldValueInvalid", "message": str(exc)}]},
            ) from None
        new = clone(new)
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise ApiError(422, "Invalid", "the patch removed the object's metadata")
        _check_preconditions(rt, current, new["metadata"])
        new["metadata"]["name"] = name
        if rt.namespaced:
            new["metadata"]["namespace"] = namespace
        new["apiVersion"] = current.obj["apiVersion"]
        new["kind"] = rt.kind
        self._check_fields(rt, new, opts)
        return self._commit_update(rt, current, new, opts, subresource), False

    def _apply(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        current: Stored | None,
        body: bytes,
        opts: WriteOptions,
        subresource: str,
    ) -> tuple[Stored, bool]:
        try:
            applied = yaml.safe_load(body.decode() if body else "")
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise bad_request(f"error decoding YAML: {exc}") from None
        if not isinstance(applied, dict):
            raise bad_request("an apply patch must be an object")
        if not opts.field_manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        if applied.get("kind") != rt.kind or not str(applied.get("apiVersion", "")).startswith(
            rt.group + "/" if rt.group else "v1"
        ):
            raise bad_request(
                f"the kind or apiVersion in the applied object ({applied.get('apiVersion')}, "
                f"{applied.get('kind')}) does not match the resource ({rt.api_version}, {rt.kind})"
            )
        meta = applied.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        meta["name"] = name
        if current is None:
            if subresource:
                raise not_found(rt.plural, name, rt.group)
            record = clone(applied)
            stored = self.create(rt, namespace, clone(applied), opts)
            if not opts.dry_run:
                self._applied[(stored.obj["metadata"]["uid"], opts.field_manager)] = record
            return stored, True
        key = (current.obj["metadata"]["uid"], opts.field_manager)
        previous = self._applied.get(key, {})
        _check_preconditions(rt, current, meta)
        record = clone(applied)
        for drop in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            meta.pop(drop, None)
        base = current.copy()
        if subresource == "status":
            new = dict(base)
            merged = apply_merge(
                {"status": base.get("status") or {}},
                {"status": applied.get("status") or {}},
                {"status": previous.get("status") or {}},
            )
            new["status"] = merged["status"]
        else:
            if rt.has_status:
                applied.pop("status", None)
                previous = {k: v for k, v in previous.items() if k != "status"}
            new = apply_merge(base, applied, previous, schema=rt.schema if rt.custom else None)
        new = clone(new)
        new["metadata"]["resourceVersion"] = current.obj["metadata"]["resourceVersion"]
        self._check_fields(rt, new, opts)
        stored = self._commit_update(rt, current, new, opts, subresource)
        if not opts.dry_run:
            self._applied[key] = record
        return stored, False

    # ------------------------------------------------------------ delete

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: dict[str, Any], opts: WriteOptions
    ) -> tuple[Stored, bool]:
        """Delete (or start deleting) an object; returns its last state and whether it is gone now."""
        current = self.store.get(rt.group_resource, namespace, name)
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        if options.get("dryRun"):
            opts.dry_run = True
        pre = options.get("preconditions") or {}
        meta = current.obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(
                rt.plural,
                name,
                rt.group,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(
                rt.plural,
                name,
                rt.group,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise invalid(
                "DeleteOptions",
                "",
                "",
                [
                    FieldError(
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                    )
                ],
            )
        obj = current.copy()
        obj_meta = obj["metadata"]
        finalizers = list(obj_meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if rt.group_resource == NAMESPACES:
            if obj_meta.get("deletionTimestamp"):
                return self.serve(rt, current), False
            obj_meta["deletionTimestamp"] = self.clock()
            obj_meta["deletionGracePeriodSeconds"] = 0
            if finalizers:
                obj_meta["finalizers"] = finalizers
            obj["status"] = {"phase": "Terminating"}
            if opts.dry_run:
                return self.serve(rt, Stored(obj)), False
            return self.serve(rt, self.store.put(rt.group_resource, obj)), False
        if rt.group_resource == PODS:
            grace = _pod_grace(obj, options)
            terminating = obj_meta.get("deletionTimestamp")
            if grace > 0 and not (terminating and grace >= int(obj_meta.get("deletionGracePeriodSeconds") or 0)):
                # Graceful deletion: the pod stays, Terminating, until its kubelet confirms with a zero grace period.
                obj_meta["deletionTimestamp"] = _later(self.clock(), grace)
                obj_meta["deletionGracePeriodSeconds"] = grace
                if finalizers:
                    obj_meta["finalizers"] = finalizers
                if opts.dry_run:
                    return self.serve(rt, Stored(obj)), False
                return self.serve(rt, self.store.put(rt.group_resource, obj)), False
            if terminating and grace > 0:
                return self.serve(rt, current), False
            if terminating and obj_meta.get("deletionGracePeriodSeconds") and finalizers:
                obj_meta["deletionGracePeriodSeconds"] = 0  # the kubelet's final delete; finalizers still hold it
                if opts.dry_run:
                    return self.serve(rt, Stored(obj)), False
                return self.serve(rt, self.store.put(rt.group_resource, obj)), False
        if finalizers:
            if obj_meta.get("deletionTimestamp") and finalizers == (obj_meta.get("finalizers") or []):
                return self.serve(rt, current), False
            obj_meta.setdefault("deletionTimestamp", self.clock())
            obj_meta.setdefault("deletionGracePeriodSeconds", 0)
            obj_meta["finalizers"] = finalizers
            if opts.dry_run:
                return self.serve(rt, Stored(obj)), False
            return self.serve(rt, self.store.put(rt.group_resource, obj)), False
        if opts.dry_run:
            return self.serve(rt, current), True
        stored = self.store.remove(rt.group_resource, namespace, name)
        self._after_delete(rt, stored)
        return self.serve(rt, stored), True

    def remove_now(self, gr: GroupResource, namespace: str, name: str) -> None:
        """Remove an object unconditionally (controllers finishing a deletion)."""
        rt = self.any_type(gr)
        if self.store.get(gr, namespace, name) is None or rt is None:
            return
        stored = self.store.remove(gr, namespace, name)
        self._after_delete(rt, stored)

    def _after_delete(self, rt: ResourceType, stored: Stored) -> None:
        self._applied = {k: v for k, v in self._applied.items() if k[0] != stored.obj["metadata"].get("uid")}
        if rt.group_resource == CRDS:
            spec = stored.obj.get("spec") or {}
            gr = (str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", "")))
            for obj in self.store.items(gr):
                self.store.remove(gr, obj.namespace, obj.name)
            self.store.close_watches(gr)  # the resource is gone: its watchers get the DELETED events, then EOF
            self._unregister_crd(stored.name)

    # ------------------------------------------------------------ scale

    def _scale_paths(self, rt: ResourceType) -> tuple[str, str, str]:
        """(spec replicas, status replicas, label selector) paths: a CRD's `subresources.scale`, else the built-in."""
        default = (".spec.replicas", ".status.replicas", "")
        if not rt.custom:
            return default
        crd = self.crd_of(rt) or {}
        versions: list[dict[str, Any]] = (crd.get("spec") or {}).get("versions") or []
        version: dict[str, Any] = next((v for v in versions if v.get("name") == rt.version), {})
        scale = (version.get("subresources") or {}).get("scale") or {}
        return (
            str(scale.get("specReplicasPath", default[0])),
            str(scale.get("statusReplicasPath", default[1])),
            str(scale.get("labelSelectorPath", "")),
        )

    def scale_of(self, rt: ResourceType, stored: Stored) -> dict[str, Any]:
        obj = stored.obj
        meta = obj["metadata"]
        spec_path, status_path, selector_path = self._scale_paths(rt)
        replicas = _get_path(obj, spec_path)
        if selector_path:
            selector = _get_path(obj, selector_path)
            selector_text = selector if isinstance(selector, str) else ""
        else:
            selector_text = format_label_selector((obj.get("spec") or {}).get("selector"))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
            },
            "spec": {"replicas": int(replicas) if isinstance(replicas, int) else (0 if rt.custom else 1)},
            "status": {"replicas": int(_get_path(obj, status_path) or 0), "selector": selector_text},
        }

    def write_scale(
        self, rt: ResourceType, namespace: str, name: str, scale: dict[str, Any], opts: WriteOptions
    ) -> Stored:
        current = self.store.get(rt.group_resource, namespace, name)
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        want = (scale.get("metadata") or {}).get("resourceVersion")
        if want and str(want) != current.obj["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid(
                "Scale",
                name,
                "autoscaling",
                [
                    FieldError(
                        "spec.replicas",
                        "FieldValueInvalid",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = current.copy()
        _set_path(new, self._scale_paths(rt)[0], replicas)
        return self._commit_update(rt, current, new, opts, "")


def _pod_grace(pod: dict[str, Any], options: dict[str, Any]) -> int:
    """The grace period a pod deletion gets: none for unscheduled or finished pods, else the request's or the pod's."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(int(grace or 0), 0)


def _later(timestamp: str, seconds: int) -> str:
    try:
        base = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        base = datetime.now(UTC)
    return (base + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_preconditions(rt: ResourceType, current: Stored, meta: dict[str, Any]) -> None:
    """A resourceVersion or uid in the written metadata must match the stored object (409 otherwise)."""
    have = current.obj["metadata"]
    want_rv = meta.get("resourceVersion")
    if want_rv and str(want_rv) != have["resourceVersion"]:
        raise conflict(rt.plural, current.name, rt.group)
    want_uid = meta.get("uid")
    if want_uid and want_uid != have.get("uid"):
        raise conflict(
            rt.plural,
            current.name,
            rt.group,
            f"Precondition failed: UID in precondition: {want_uid}, UID in object meta: {have.get('uid')}",
        )


def _get_path(obj: Any, path: str) -> Any:
    cur = obj
    for key in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    keys = path.strip(".").split(".")
    cur = obj
    for key in keys[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[key] = nxt
        cur = nxt
    cur[keys[-1]] = value


# Kinds whose objects carry metadata.generation on the real server (1.35); ConfigMaps, Secrets, Nodes and the like do
# not.
GENERATION_KINDS = frozenset(
    {
        ("apps", "deployments"),
        ("apps", "daemonsets"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("", "pods"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    }
)


def _tracks_generation(rt: ResourceType) -> bool:
    return rt.custom or rt.group_resource in GENERATION_KINDS


def _spec_changed(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
    skip = {"metadata", "status"} if rt.has_status else {"metadata"}
    keys = (set(old) | set(new)) - skip
    return any(old.get(k) != new.get(k) for k in keys)


def parse_body(raw: bytes) -> Any:
    """A JSON or YAML request body."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return yaml.safe_load(raw.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise bad_request(f"error decoding request body: {exc}") from None
