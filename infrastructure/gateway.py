"""The Kubernetes gateway: the one place that talks to the Kubernetes API.

It configures the official ``kubernetes`` client from settings (the simulated cluster's
kubeconfig, a kubeconfig file, or the pod's service account), turns the client's exceptions into
a few typed errors the rest of the product can act on, and offers idempotent verbs
(create-or-get, delete-if-exists). Objects go in and come out as plain camelCase dicts: the
responses are decoded from JSON directly, which is cheaper than the client's model objects and
keeps one representation across the product.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from django.conf import settings
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from coderadmin import metrics

# (connect, read) seconds for ordinary calls; watches and log follows pass their own.
DEFAULT_TIMEOUT = (5.0, 30.0)


class GatewayError(Exception):
    """A failed Kubernetes API call. ``message`` is the API server's own words when it sent any."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "", retry_after=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class NotFound(GatewayError):
    pass


class AlreadyExists(GatewayError):
    pass


class Conflict(GatewayError):
    """A stale resourceVersion or a failed precondition: re-read and try again."""


class Forbidden(GatewayError):
    pass


class QuotaExceeded(Forbidden):
    pass


class PodSecurityDenied(Forbidden):
    pass


class Invalid(GatewayError):
    pass


class Unauthorized(GatewayError):
    pass


class Gone(GatewayError):
    """410: the resourceVersion a watch resumes from is too old; list again."""


class Unavailable(GatewayError):
    """5xx, 429, timeouts and connection errors: worth retrying, honouring ``retry_after``."""

    transient = True


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def translate(exc: BaseException) -> GatewayError:
    """Map a client exception onto one of our typed errors."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message, reason = str(exc.reason or ""), str(exc.reason or "")
        try:
            body = json.loads(exc.body or "")
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict):
            message = body.get("message") or message
            reason = body.get("reason") or reason
        kwargs = {"status": status, "reason": reason, "retry_after": _retry_after(exc.headers)}
        if status == 404:
            return NotFound(message, **kwargs)
        if status == 409:
            cls = AlreadyExists if reason == "AlreadyExists" else Conflict
            return cls(message, **kwargs)
        if status == 403:
            if "exceeded quota" in message or "must specify" in message:
                return QuotaExceeded(message, **kwargs)
            if "violates PodSecurity" in message:
                return PodSecurityDenied(message, **kwargs)
            return Forbidden(message, **kwargs)
        if status == 410:
            return Gone(message, **kwargs)
        if status == 401:
            return Unauthorized(message or "the cluster rejected our credentials", **kwargs)
        if status in (400, 422):
            return Invalid(message, **kwargs)
        if status == 429 or status >= 500 or status == 0:
            return Unavailable(message or f"the Kubernetes API answered {status}", **kwargs)
        return GatewayError(message, **kwargs)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return Unavailable(f"the Kubernetes API could not be reached: {exc}")
    return GatewayError(str(exc))


def translate_status(message: str, *, status: int, reason: str = "") -> GatewayError:
    """The typed error of a Status the server sent inside a stream (not as an HTTP error)."""
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"message": message, "reason": reason})
    return translate(exc)


_client_lock = threading.Lock()
_api_client: client.ApiClient | None = None


def _load_configuration() -> client.Configuration:
    configuration = client.Configuration()
    if settings.CLUSTER_MODE == "incluster":
        config.load_incluster_config(client_configuration=configuration)
    else:
        path = settings.SIMULATOR_KUBECONFIG if settings.CLUSTER_MODE == "simulated" else settings.KUBECONFIG
        config.load_kube_config(config_file=path or None, client_configuration=configuration)
    configuration.retries = False  # retries are the tasks' decision, with backoff
    return configuration


def api_client() -> client.ApiClient:
    """The process-wide client for the configured cluster (created on first use)."""
    global _api_client
    with _client_lock:
        if _api_client is None:
            try:
                _api_client = client.ApiClient(_load_configuration())
            except (config.ConfigException, OSError) as exc:
                raise Unavailable(f"no usable cluster configuration: {exc}") from exc
        return _api_client


def reset_api_client(new: client.ApiClient | None = None) -> None:
    """Forget (or replace) the cached client: after the kubeconfig changed, and in tests."""
    global _api_client
    with _client_lock:
        _api_client = new


@dataclass(frozen=True)
class Kind:
    api: type
    suffix: str  # e.g. "namespaced_pod": the client's method names are <verb>_<suffix>
    namespaced: bool = True


KINDS: dict[str, Kind] = {
    "Pod": Kind(client.CoreV1Api, "namespaced_pod"),
    "PersistentVolumeClaim": Kind(client.CoreV1Api, "namespaced_persistent_volume_claim"),
    "Secret": Kind(client.CoreV1Api, "namespaced_secret"),
    "Event": Kind(client.CoreV1Api, "namespaced_event"),
    "ResourceQuota": Kind(client.CoreV1Api, "namespaced_resource_quota"),
    "NetworkPolicy": Kind(client.NetworkingV1Api, "namespaced_network_policy"),
    "Lease": Kind(client.CoordinationV1Api, "namespaced_lease"),
    "Namespace": Kind(client.CoreV1Api, "namespace", namespaced=False),
    "Node": Kind(client.CoreV1Api, "node", namespaced=False),
}


def _decode(response: Any) -> Any:
    data = response.data if hasattr(response, "data") else response
    return json.loads(data) if data else None


class Gateway:
    """Idempotent verbs over plain dicts. One instance per caller is cheap (the client is shared)."""

    def __init__(self, api: client.ApiClient | None = None, timeout=DEFAULT_TIMEOUT):
        self.client = api or api_client()
        self.timeout = timeout

    def _method(self, kind: str, verb: str):
        spec = KINDS[kind]
        return getattr(spec.api(self.client), f"{verb}_{spec.suffix}"), spec.namespaced

    def _call(self, fn, *args, **kwargs) -> Any:
        kwargs.setdefault("_request_timeout", self.timeout)
        kwargs.setdefault("_preload_content", False)
        try:
            return _decode(fn(*args, **kwargs))
        except Exception as exc:  # every failure becomes a typed error
            error = translate(exc)
            if not isinstance(error, NotFound | AlreadyExists | Conflict):  # answers, not failures
                metrics.kubernetes_api_error(error.status)
            raise error from exc

    def _scope(self, namespaced: bool, namespace: str | None) -> tuple:
        return (namespace,) if namespaced else ()

    def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        fn, namespaced = self._method(obj["kind"], "create")
        extra = {"dry_run": "All"} if dry_run else {}
        namespace = obj.get("metadata", {}).get("namespace")
        return self._call(fn, *self._scope(namespaced, namespace), obj, **extra)

    def create_or_get(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``obj``; if it exists already, return the stored one. (object, created)."""
        try:
            return self.create(obj), True
        except AlreadyExists:
            meta = obj["metadata"]
            return self.get(obj["kind"], meta.get("namespace"), meta["name"]), False

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        fn, namespaced = self._method(kind, "read")
        return self._call(fn, name, *self._scope(namespaced, namespace))

    def get_or_none(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.get(kind, namespace, name)
        except NotFound:
            return None

    def list(self, kind: str, namespace: str | None = None, **query: Any) -> dict[str, Any]:
        """The whole List object (``items`` and ``metadata.resourceVersion``)."""
        spec = KINDS[kind]
        if spec.namespaced and namespace is None:
            name = spec.suffix.removeprefix("namespaced_")
            fn = getattr(spec.api(self.client), f"list_{name}_for_all_namespaces")
            return self._call(fn, **query)
        fn, namespaced = self._method(kind, "list")
        return self._call(fn, *self._scope(namespaced, namespace), **query)

    def patch(self, kind: str, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        fn, namespaced = self._method(kind, "patch")
        return self._call(fn, name, *self._scope(namespaced, namespace), body)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT the whole object; with ``metadata.resourceVersion`` set, a concurrent change is Conflict."""
        fn, namespaced = self._method(obj["kind"], "replace")
        meta = obj["metadata"]
        return self._call(fn, meta["name"], *self._scope(namespaced, meta.get("namespace")), obj)

    def ensure_namespace(self, name: str) -> bool:
        """Create the namespace when it is missing; True when it was created."""
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        return self.create_or_get(namespace)[1]

    def watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: int = 300,
        **query: Any,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(type, object)`` watch events as plain dicts until the server ends the stream.

        Bookmarks are asked for (they carry the resourceVersion to resume from); an ERROR event is
        raised as the typed error it describes (``Gone`` for 410).
        """
        spec = KINDS[kind]
        if spec.namespaced and namespace is None:
            name = spec.suffix.removeprefix("namespaced_")
            fn = getattr(spec.api(self.client), f"list_{name}_for_all_namespaces")
            scope: tuple = ()
        else:
            fn, namespaced = self._method(kind, "list")
            scope = self._scope(namespaced, namespace)
        try:
            response = fn(
                *scope,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=(self.timeout[0], timeout_seconds + 10),
                **query,
            )
        except Exception as exc:  # every failure becomes a typed error
            raise translate(exc) from exc
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code = int(status.get("code") or 500)
                    kwargs = {"status": code, "reason": status.get("reason", "")}
                    message = status.get("message") or "watch error"
                    raise Gone(message, **kwargs) if code == 410 else translate_status(message, **kwargs)
                yield event["type"], event["object"]
        except GatewayError:
            raise
        except Exception as exc:  # a dropped stream, a timeout, a half-written line
            raise translate(exc) from exc
        finally:
            # Close rather than pool: a stream's connection may lead to a server that is going away.
            response.close()

    def follow_pod_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        *,
        read_timeout: float = 30.0,
        **query: Any,
    ) -> Iterator[str]:
        """Yield the lines of a container's log as they are written, until the stream ends."""
        api = client.CoreV1Api(self.client)
        kwargs = {"_request_timeout": (self.timeout[0], read_timeout), "_preload_content": False, **query}
        if container:
            kwargs["container"] = container
        try:
            response = api.read_namespaced_pod_log(name, namespace, follow=True, **kwargs)
        except Exception as exc:  # every failure becomes a typed error
            raise translate(exc) from exc
        try:
            yield from iter_resp_lines(response)
        except Exception as exc:  # a dropped stream or a read timeout
            raise translate(exc) from exc
        finally:
            # Close rather than pool: a stream's connection may lead to a server that is going away.
            response.close()

    def delete_if_exists(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
    ) -> bool:
        """Delete; False when it was already gone. ``uid`` guards against deleting a newer object."""
        fn, namespaced = self._method(kind, "delete")
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call(fn, name, *self._scope(namespaced, namespace), body=body)
        except NotFound:
            return False
        except Conflict:
            # The precondition failed: the object by that name is a newer one, not ours to delete.
            return False
        return True

    def pod_log(self, namespace: str, name: str, container: str | None = None, **query: Any) -> str:
        api = client.CoreV1Api(self.client)
        kwargs = {"_request_timeout": self.timeout, "_preload_content": False, **query}
        if container:
            kwargs["container"] = container
        try:
            response = api.read_namespaced_pod_log(name, namespace, **kwargs)
        except Exception as exc:  # every failure becomes a typed error
            raise translate(exc) from exc
        return response.data.decode("utf-8", "replace")

    def reset_connections(self) -> None:
        """Drop pooled keep-alive connections, so the next request connects afresh (after an API
        server restart, a pooled connection may still lead to the old, stopping process)."""
        self.client.rest_client.pool_manager.clear()

    def version(self) -> dict[str, Any]:
        return self._call(client.VersionApi(self.client).get_code)


def is_simulated(version: dict[str, Any]) -> bool:
    """True when the cluster's /version identifies the built-in simulated cluster."""
    return "simulated" in json.dumps(version).lower()
