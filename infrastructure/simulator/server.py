"""The HTTP layer of the simulated API server: routing, authentication, discovery, verbs, watch.

Built on the standard library's ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive, chunked streaming
for watches and followed logs), so it embeds in tests and in the product's process alike.
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from . import admission, errors, faults, openapi, patch, rbac, validation
from . import exec as pod_exec
from .errors import APIError
from .rbac import UserInfo
from .resources import RESOURCES, ResourceType, by_group_plural, groups
from .store import Stored
from .version import version_info

if TYPE_CHECKING:
    from .cluster import SimulatedCluster

log = logging.getLogger(__name__)

_HEALTH = ("/healthz", "/livez", "/readyz")
_WATCH_DEFAULT_SECONDS = 1800


class APIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], cluster: SimulatedCluster, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.cluster = cluster
        self.stopping = False
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.ssl_context is not None:
            # The handshake runs on the first read, in the request's own thread.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


def _bool(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, [""])[0].lower() in ("1", "true")


def _int(query: dict[str, list[str]], key: str) -> int | None:
    raw = query.get(key, [""])[0]
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'{key}: Invalid value: "{raw}": must be an integer') from None


def _resource_entry(rt: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    out = [entry]
    for sub in rt.subresources:
        verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
        out.append(
            {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": verbs,
            }
        )
    return out


def _resource_list(group: str, version: str) -> dict[str, Any]:
    gv = f"{group}/{version}" if group else version
    resources = [
        e for rt in RESOURCES if rt.group == group and rt.version == version for e in _resource_entry(rt)
    ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _api_group(name: str) -> dict[str, Any]:
    versions = sorted({rt.version for rt in groups()[name]})
    gv = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gv, "preferredVersion": gv[0]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: APIServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ plumbing

    @property
    def cluster(self) -> SimulatedCluster:
        return self.server.cluster

    def _dispatch(self, method: str) -> None:
        self._warnings: list[str] = []
        self._body = b""
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            self._body = self._read_body()
            path = url.path.rstrip("/") or "/"
            if path in _HEALTH:
                self._send_bytes(200, b"ok", "text/plain")
                return
            user = self._authenticate()
            if self._inject_fault(method):
                return
            self._route(method, path, query, user)
        except APIError as exc:
            self._send_json(exc.code, exc.status(), exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("simulated API server failed on %s %s", method, self.path)
            err = errors.internal_error(str(exc))
            self._send_json(err.code, err.status())

    def _read_body(self) -> bytes:
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit():
            self.close_connection = True
            raise errors.bad_request(f"invalid Content-Length: {raw}")
        length = int(raw)
        return self.rfile.read(length) if length else b""

    def _inject_fault(self, method: str) -> bool:
        """Apply an armed fault; True when the request was dropped instead of answered."""
        fault = self.cluster.faults.check(method, self.path)
        if fault is None:
            return False
        if fault.kind == faults.KIND_DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.kind == faults.KIND_DELAY:
            time.sleep(fault.delay)
            return False
        raise fault.error()

    def _authenticate(self) -> UserInfo:
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        user = self.cluster.user_for_token(token) if token else None
        if user is None:
            raise errors.unauthorized()
        return self._impersonate(user)

    def _impersonate(self, user: UserInfo) -> UserInfo:
        """``Impersonate-User`` / ``Impersonate-Group`` (``kubectl --as``), allowed by RBAC "impersonate"."""
        target = self.headers.get("Impersonate-User")
        extra_groups = self.headers.get_all("Impersonate-Group") or []
        if not target:
            if extra_groups:
                raise errors.bad_request("requested groups without impersonating a user")
            return user
        view = self.cluster.store.view()
        groups: list[str] = []
        if target.startswith("system:serviceaccount:") and target.count(":") == 3:
            namespace, name = target.split(":")[2:]
            rbac.authorize(view, user, "impersonate", "", "serviceaccounts", "", namespace, name)
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        else:
            rbac.authorize(view, user, "impersonate", "", "users", "", None, target)
        for group in extra_groups:
            rbac.authorize(view, user, "impersonate", "", "groups", "", None, group)
        groups = [*dict.fromkeys([*extra_groups, *groups, "system:authenticated"])]
        return UserInfo(target, tuple(groups))

    def _send_bytes(
        self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for warning in self._warnings:
            self.send_header("Warning", '299 - "' + warning.replace("\\", "\\\\").replace('"', '\\"') + '"')
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, code: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(code, json.dumps(data, separators=(",", ":")).encode(), "application/json", headers)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunked(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            # Peek at the raw TCP stream (below TLS): an empty read means the client closed it.
            return bool(readable) and socket.socket.recv(self.connection, 1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _json_body(self) -> Any:
        try:
            return json.loads(self._body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    # ------------------------------------------------------------------ routing

    def _route(self, method: str, path: str, query: dict[str, list[str]], user: UserInfo) -> None:
        parts = [p for p in path.split("/") if p]
        if path == "/version":
            self._send_json(200, version_info())
            return
        if parts[:2] == ["openapi", "v3"]:
            doc = openapi.root() if len(parts) == 2 else openapi.lookup("/".join(parts[2:]))
            if doc is None:
                raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
            self._send_json(200, doc)
            return
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                host = self.headers.get("Host", "")
                self._send_json(
                    200,
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
                    },
                )
                return
            if parts[1] != "v1":
                raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"]:
            known = groups()
            if len(parts) == 1:
                names = [g for g in known if g]
                self._send_json(
                    200,
                    {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_api_group(g) for g in names]},
                )
                return
            if parts[1] not in known or not parts[1]:
                raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
            if len(parts) == 2:
                self._send_json(200, _api_group(parts[1]))
                return
            group, version, rest = parts[1], parts[2], parts[3:]
            if all(rt.version != version for rt in known[group]):
                raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        else:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if method != "GET":
                raise errors.method_not_allowed()
            self._send_json(200, _resource_list(group, version))
            return
        self._resource(method, group, version, rest, query, user)

    def _resource(
        self,
        method: str,
        group: str,
        version: str,
        rest: list[str],
        query: dict[str, list[str]],
        user: UserInfo,
    ) -> None:
        namespace = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and (rt := by_group_plural(group, rest[2]))
            and rt.namespaced
        ):
            namespace, rest = rest[1], rest[2:]
        rt = by_group_plural(group, rest[0])
        if rt is None or rt.version != version or len(rest) > 3:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if rt.plural == "pods" and not group and sub == "exec" and name and method in ("GET", "POST"):
            rbac.authorize(self.cluster.store.view(), user, "create", "", "pods", "exec", namespace, name)
            pod_exec.serve(self, namespace or "", name, query)
            return
        if sub and sub not in rt.subresources:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and namespace is None and method != "GET":
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        verb = self._verb(method, name, sub, query)
        if verb not in rt.verbs or (sub == "log" and verb != "get"):
            raise errors.method_not_allowed()
        if rt.plural == "selfsubjectaccessreviews":
            self._self_subject_access_review(user)
            return
        rbac.authorize(self.cluster.store.view(), user, verb, group, rt.plural, sub, namespace, name)
        handler = getattr(self, f"_verb_{verb}")
        handler(rt, namespace, name, sub, query, user)

    @staticmethod
    def _verb(method: str, name: str | None, sub: str, query: dict[str, list[str]]) -> str:
        if method == "GET":
            if name is None:
                return "watch" if _bool(query, "watch") else "list"
            return "get"
        if method == "POST":
            return "create" if name is None else "post-on-object"
        if method == "PUT":
            return "update" if name else "put-on-collection"
        if method == "PATCH":
            return "patch" if name else "patch-on-collection"
        return "delete" if name else "deletecollection"

    # ------------------------------------------------------------------ options

    @staticmethod
    def _dry_run(query: dict[str, list[str]], body: dict[str, Any] | None = None) -> bool:
        values = list(query.get("dryRun", [])) + list((body or {}).get("dryRun") or [])
        for value in values:
            if value != "All":
                raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
        return bool(values)

    def _strictness(self, query: dict[str, list[str]]) -> tuple[bool, bool]:
        """(strict, keep warnings) from ``fieldValidation``."""
        mode = query.get("fieldValidation", ["Warn"])[0] or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"'
            )
        return mode == "Strict", mode == "Warn"

    def _decode(self, rt: ResourceType, body: dict[str, Any], query: dict[str, list[str]]) -> None:
        """Decoder checks; unknown fields are dropped from ``body`` as the real decoder drops them."""
        strict, warn = self._strictness(query)
        warnings = validation.decode(rt.group, rt.version, rt.kind, body, strict)
        for warning in warnings:
            match = _UNKNOWN_FIELD.fullmatch(warning)
            if match:
                _drop_path(body, match.group(1))
        if warn:
            self._warnings.extend(warnings)

    def _object_body(self, rt: ResourceType) -> dict[str, Any]:
        body = self._json_body()
        if not isinstance(body, dict):
            raise errors.bad_request(
                f"json: cannot unmarshal {type(body).__name__} into Go value of type {rt.kind}"
            )
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        return body

    def _check(self, rt: ResourceType, operation: str | None):
        """Validation (and admission unless ``operation`` is None) run by the store before storing."""
        view = self.cluster.store.view()

        def check(new: dict[str, Any], old: dict[str, Any] | None) -> None:
            validation.validate(rt.group, rt.version, rt.kind, new, old)
            if operation is not None:
                namespace = new["metadata"].get("namespace")
                admission.admit(view, operation, rt.group, rt.version, rt.kind, namespace, new, old)

        return check

    # ------------------------------------------------------------------ verbs

    def _verb_get(self, rt, namespace, name, sub, query, user) -> None:
        if sub == "log":
            self._pod_log(namespace, name, query)
            return
        stored = self.cluster.store.get_stored(rt, namespace, name)
        self._send_bytes(200, stored.json, "application/json")

    def _verb_list(self, rt, namespace, name, sub, query, user) -> None:
        rv = query.get("resourceVersion", [""])[0]
        store = self.cluster.store
        if rv and rv != "0" and (not rv.isdigit() or int(rv) > store.resource_version):
            raise errors.APIError(
                504,
                "Timeout",
                f"Too large resource version: {rv}, current: {store.resource_version}",
                {
                    "causes": [
                        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                    ],
                    "retryAfterSeconds": 1,
                },
            )
        result = store.list_page(
            rt,
            namespace,
            label_selector=query.get("labelSelector", [""])[0],
            field_selector=query.get("fieldSelector", [""])[0],
            limit=_int(query, "limit"),
            continue_token=query.get("continue", [""])[0],
        )
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
            meta["remainingItemCount"] = result.remaining
        head = json.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})[:-1]
        body = head.encode() + b',"items":[' + b",".join(s.json for s in result.items) + b"]}"
        self._send_bytes(200, body, "application/json")

    def _verb_watch(self, rt, namespace, name, sub, query, user) -> None:
        store = self.cluster.store
        field_selector = query.get("fieldSelector", [""])[0]
        if name:
            field_selector = ",".join(s for s in (field_selector, f"metadata.name={name}") if s)
        send_initial = _bool(query, "sendInitialEvents")
        rv = query.get("resourceVersion", [""])[0]
        watcher = store.watch(
            rt,
            namespace,
            label_selector=query.get("labelSelector", [""])[0],
            field_selector=field_selector,
            resource_version=None if send_initial else rv,
        )
        timeout = _int(query, "timeoutSeconds") or _WATCH_DEFAULT_SECONDS
        bookmarks = _bool(query, "allowWatchBookmarks")
        interval = self.cluster.bookmark_interval
        deadline = time.monotonic() + timeout
        last_bookmark = time.monotonic()
        initial_left = watcher.initial_events if send_initial else -1
        self._start_chunked("application/json")
        try:
            if initial_left == 0:
                self._bookmark(rt, store.resource_version, initial_end=True)
            while not self.server.stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                entry = watcher.next_raw(min(remaining, interval if bookmarks else 1.0, 1.0))
                if entry is None:
                    if self._client_gone():
                        break
                    if bookmarks and time.monotonic() - last_bookmark >= interval:
                        bookmark_rv = watcher.bookmark_rv()
                        if bookmark_rv is not None:
                            self._bookmark(rt, bookmark_rv)
                            last_bookmark = time.monotonic()
                    continue
                event_type, payload = entry
                if event_type == "CLOSED":
                    break
                if isinstance(payload, Stored):
                    line = b'{"type":"' + event_type.encode() + b'","object":' + payload.json + b"}\n"
                else:
                    line = json.dumps({"type": event_type, "object": payload}).encode() + b"\n"
                self._chunk(line)
                if initial_left > 0:
                    initial_left -= 1
                    if initial_left == 0:
                        self._bookmark(rt, store.resource_version, initial_end=True)
        except OSError:
            self.close_connection = True
        finally:
            watcher.stop()
        self._end_chunked()

    def _bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        self._chunk(json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n")

    def _verb_create(self, rt, namespace, name, sub, query, user) -> None:
        body = self._object_body(rt)
        self._decode(rt, body, query)
        obj = self.cluster.store.create(
            rt, body, namespace, dry_run=self._dry_run(query), check=self._check(rt, "CREATE")
        )
        self._send_json(201, obj)

    def _verb_update(self, rt, namespace, name, sub, query, user) -> None:
        body = self._object_body(rt)
        self._decode(rt, body, query)
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        body["metadata"] = {**meta, "name": name}
        status_only = sub == "status"
        obj = self.cluster.store.update(
            rt,
            body,
            namespace,
            dry_run=self._dry_run(query),
            check=self._check(rt, None if status_only else "UPDATE"),
            status_only=status_only,
        )
        self._send_json(200, obj)

    def _verb_patch(self, rt, namespace, name, sub, query, user) -> None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in patch.PATCH_TYPES:
            raise errors.unsupported_media_type(content_type)
        if content_type == patch.APPLY:
            try:
                body = yaml.safe_load(self._body or b"{}")
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from None
            if not query.get("fieldManager", [""])[0]:
                raise errors.APIError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: '
                    "fieldManager: Required value: is required for apply patch",
                )
        else:
            body = self._json_body()
        store = self.cluster.store
        dry_run = self._dry_run(query)
        status_only = sub == "status"
        with store.lock:
            try:
                current = store.get_stored(rt, namespace, name).obj
            except APIError as exc:
                if exc.code != 404 or content_type != patch.APPLY or status_only:
                    raise
                applied = self._object_body_from(rt, body)
                applied.setdefault("metadata", {})["name"] = name
                self._decode(rt, applied, query)
                obj = store.create(rt, applied, namespace, dry_run=dry_run, check=self._check(rt, "CREATE"))
                self._send_json(201, obj)
                return
            if content_type == patch.JSON_MERGE:
                new = patch.json_merge(current, body)
            elif content_type == patch.STRATEGIC:
                new = patch.strategic_merge(current, body)
            elif content_type == patch.JSON_PATCH:
                new = patch.json_patch(current, body)
            else:
                new = patch.apply_config(current, self._object_body_from(rt, body))
            if not isinstance(new.get("metadata"), dict):
                raise errors.bad_request("metadata must be an object")
            self._decode(rt, new, query)
            new["metadata"]["name"] = name
            obj = store.update(
                rt,
                new,
                namespace,
                dry_run=dry_run,
                check=self._check(rt, None if status_only else "UPDATE"),
                status_only=status_only,
            )
        self._send_json(200, obj)

    def _object_body_from(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request(f"json: cannot unmarshal into Go value of type {rt.kind}")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if (api_version and api_version != rt.api_version) or (kind and kind != rt.kind):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )
        return dict(body)

    def _delete_options(self, query: dict[str, list[str]]) -> dict[str, Any]:
        body = self._json_body() if self._body else {}
        if not isinstance(body, dict):
            raise errors.bad_request("json: cannot unmarshal into Go value of type v1.DeleteOptions")
        grace = _int(query, "gracePeriodSeconds")
        if grace is None:
            grace = body.get("gracePeriodSeconds")
        policy = query.get("propagationPolicy", [""])[0] or body.get("propagationPolicy")
        if body.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        return {
            "grace_period_seconds": grace,
            "propagation_policy": policy,
            "preconditions": body.get("preconditions") or {},
            "dry_run": self._dry_run(query, body),
        }

    def _deleted_body(self, rt: ResourceType, result) -> dict[str, Any]:
        if not result.removed or (rt.plural in ("pods", "services", "namespaces") and not rt.group):
            return result.obj
        meta = result.obj["metadata"]
        details = {"name": meta["name"], "kind": rt.plural, "uid": meta["uid"]}
        if rt.group:
            details["group"] = rt.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _verb_delete(self, rt, namespace, name, sub, query, user) -> None:
        result = self.cluster.store.delete(rt, namespace, name, **self._delete_options(query))
        self._send_json(200, self._deleted_body(rt, result))

    def _verb_deletecollection(self, rt, namespace, name, sub, query, user) -> None:
        options = self._delete_options(query)
        store = self.cluster.store
        with store.lock:
            page = store.list_page(
                rt,
                namespace,
                label_selector=query.get("labelSelector", [""])[0],
                field_selector=query.get("fieldSelector", [""])[0],
            )
            for stored in page.items:
                meta = stored.obj["metadata"]
                try:
                    store.delete(rt, meta.get("namespace"), meta["name"], **options)
                except APIError as exc:
                    if exc.code != 404:
                        raise
        self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def _self_subject_access_review(self, user: UserInfo) -> None:
        body = self._json_body()
        spec = body.get("spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise errors.bad_request("spec is required")
        attrs = spec.get("resourceAttributes") or {}
        allowed, reason = True, ""
        check = getattr(rbac, "allowed", None)
        if attrs and check is not None:
            allowed, reason = check(
                self.cluster.store.view(),
                user,
                attrs.get("verb", ""),
                attrs.get("group", ""),
                attrs.get("resource", ""),
                attrs.get("subresource", ""),
                attrs.get("namespace") or None,
                attrs.get("name") or None,
            )
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        self._send_json(
            201,
            {
                "kind": "SelfSubjectAccessReview",
                "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            },
        )

    # ------------------------------------------------------------------ logs

    def _pod_log(self, namespace: str, name: str, query: dict[str, list[str]]) -> None:
        store = self.cluster.store
        pod = store.get_stored("pods", namespace, name).obj
        uid = pod["metadata"]["uid"]
        names = [c.get("name") for c in pod.get("spec", {}).get("containers") or []]
        container = query.get("container", [""])[0]
        if not container:
            if len(names) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        elif container not in names:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        lines = store.log_lines(namespace, name, container)
        since = query.get("sinceTime", [""])[0]
        since_seconds = _int(query, "sinceSeconds")
        if since_seconds is not None:
            since = (datetime.now(UTC) - timedelta(seconds=since_seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if since:
            lines = [(ts, text) for ts, text in lines if _after(ts, since)]
        tail = _int(query, "tailLines")
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        stamps = _bool(query, "timestamps")

        def render(rows: list[tuple[str, str]]) -> bytes:
            return "".join(f"{ts} {text}\n" if stamps else f"{text}\n" for ts, text in rows).encode()

        if not _bool(query, "follow"):
            self._send_bytes(200, render(lines), "text/plain")
            return
        seen = len(store.log_lines(namespace, name, container))
        self._start_chunked("text/plain")
        try:
            if lines:
                self._chunk(render(lines))
            while not self.server.stopping:
                store.wait_for_logs(0.5)
                fresh = store.log_lines(namespace, name, container, seen)
                if fresh:
                    seen += len(fresh)
                    self._chunk(render(fresh))
                    continue
                if _log_finished(store, namespace, name, uid, container) or self._client_gone():
                    break
        except OSError:
            self.close_connection = True
        self._end_chunked()


_UNKNOWN_FIELD = re.compile(r'unknown field "([^"]+)"')
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _drop_path(body: Any, path: str) -> None:
    """Remove the field at a decoder path such as ``spec.containers[0].foo``."""
    parts: list[str | int] = [
        m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PATH_PART.finditer(path)
    ]
    current = body
    for part in parts[:-1]:
        in_list = isinstance(part, int) and isinstance(current, list) and part < len(current)
        in_map = isinstance(part, str) and isinstance(current, dict) and part in current
        if not (in_list or in_map):
            return
        current = current[part]
    if parts and isinstance(current, dict) and isinstance(parts[-1], str):
        current.pop(parts[-1], None)


def _after(stamp: str, since: str) -> bool:
    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    try:
        return parse(stamp) >= parse(since)
    except ValueError:
        raise errors.bad_request(f'sinceTime: Invalid value: "{since}": must be RFC3339') from None


def _log_finished(store, namespace: str, name: str, uid: str, container: str) -> bool:
    """A followed log ends when the pod is gone or the container terminated."""
    try:
        pod = store.get_stored("pods", namespace, name).obj
    except APIError:
        return True
    if pod["metadata"]["uid"] != uid:
        return True
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container and "terminated" in (status.get("state") or {}):
            return True
    return False
