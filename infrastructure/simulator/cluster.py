"""The simulated cluster: one store, the HTTP API server in front of it, tokens and controllers.

Interface for other parts (controllers, faults, the product's embedded mode):
- ``SimulatedCluster(host="127.0.0.1", port=0, tls=True)``; ``start()`` / ``stop()`` (``stop`` keeps
  the store, so ``start()`` again serves the same state on the same port); ``close()`` for good;
  ``url``; ``store``; ``ca_file`` (the self-signed CA clients must trust).
- ``load_profile(name)``: ``profiles.load_profile(cluster, name)`` for a named profile, else only the
  "default" and "kube-system" namespaces.
- ``add_controller(controller)``: any object with ``start()`` and ``stop()``; started with the
  server (at once if it already runs) and stopped before it.
- ``faults``: the ``FaultInjector`` the HTTP layer consults for every authenticated request; its
  cluster-wide faults are bound here (close watches, expire resourceVersions, restart).
- ``restart()``: stop and start again on the same port with the same store.
- ``admin_token``; ``token_for_service_account(namespace, name)`` mints a bearer token for that
  service account; ``write_kubeconfig(path, token=None)``.
"""

from __future__ import annotations

import base64
import importlib
import logging
import secrets
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

import yaml

from .errors import APIError
from .faults import FaultInjector
from .rbac import UserInfo
from .server import APIServer
from .store import Store
from .tls import self_signed

log = logging.getLogger(__name__)

ADMIN_USER = UserInfo("system:admin", ("system:masters", "system:authenticated"))


class Controller(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class SimulatedCluster:
    """An in-memory Kubernetes API server on a real port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        store: Store | None = None,
        admin_token: str | None = None,
        bookmark_interval: float = 5.0,
        tls: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.store = store or Store()
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.bookmark_interval = bookmark_interval
        self._tokens: dict[str, UserInfo] = {self.admin_token: ADMIN_USER}
        self._controllers: list[Controller] = []
        self.faults = FaultInjector()
        self.faults.bind(
            close_watches=self.store.close_watches,
            expire_resource_versions=self.store.compact,
            restart=self.restart,
        )
        self._server: APIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file: Path | None = None
        if tls:
            cert, key = self_signed(tuple(dict.fromkeys((host, "127.0.0.1", "localhost"))))
            self._tls_dir = tempfile.TemporaryDirectory(prefix="simulated-cluster-")
            self.ca_file = Path(self._tls_dir.name) / "ca.crt"
            self.ca_file.write_bytes(cert)
            (Path(self._tls_dir.name) / "tls.key").write_bytes(key)
            self._ca_pem = cert

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        scheme = "https" if self.ca_file else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> SimulatedCluster:
        with self._lock:
            if self._server is not None:
                return self
            self._server = APIServer((self.host, self.port), self, self._ssl_context())
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="simulated-apiserver",
                daemon=True,
            )
            self._thread.start()
            controllers = list(self._controllers)
        for controller in controllers:
            controller.start()
        return self

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self.ca_file.with_name("tls.key"))
        return context

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            controllers = list(self._controllers)
        if server is None:
            return
        for controller in reversed(controllers):
            controller.stop()
        server.stopping = True
        self.store.close_watches()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def close(self) -> None:
        """Stop serving and cancel the store's timers (the cluster is not restarted after this)."""
        self.stop()
        self.store.close()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    def __enter__(self) -> SimulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_controller(self, controller: Controller) -> None:
        with self._lock:
            self._controllers.append(controller)
            running = self._server is not None
        if running:
            controller.start()

    def restart(self) -> None:
        self.stop()
        self.start()

    # ------------------------------------------------------------------ identities

    def user_for_token(self, token: str) -> UserInfo | None:
        return self._tokens.get(token)

    def token_for_service_account(self, namespace: str, name: str) -> str:
        """A bearer token authenticating as ``system:serviceaccount:<namespace>:<name>``."""
        token = secrets.token_urlsafe(24)
        self._tokens[token] = UserInfo(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        )
        return token

    # ------------------------------------------------------------------ setup

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        try:
            self.store.create("namespaces", {"metadata": {"name": name, "labels": labels or {}}})
        except APIError as exc:
            if exc.code != 409:
                raise

    def load_profile(self, profile: str | None) -> None:
        """Populate a fresh cluster: ``profiles.load_profile`` for a named profile when that hook
        exists, otherwise just the "default" and "kube-system" namespaces."""
        loader = None
        if profile:
            try:
                loader = getattr(importlib.import_module(f"{__package__}.profiles"), "load_profile", None)
            except ModuleNotFoundError:
                loader = None
            if loader is None:
                log.warning("profile %s requested but no profile loader is installed", profile)
        if loader is not None:
            loader(self, profile)
            return
        for name in ("default", "kube-system"):
            self.ensure_namespace(name)

    def kubeconfig(self, token: str | None = None, context: str = "simulated") -> dict[str, Any]:
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_file is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": f"{context}-user", "user": {"token": token or self.admin_token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": f"{context}-user", "namespace": "default"},
                }
            ],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, token: str | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(token), sort_keys=False))
        path.chmod(0o600)
        return path
