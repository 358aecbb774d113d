"""Helpers for the simulator's conformance tests: raw HTTP next to the official client."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from infrastructure.simulator.testing import ClusterHandle


@dataclass
class RawResponse:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """Plain HTTPS requests, for bodies the 37.x client would refuse to send."""

    def __init__(self, handle: ClusterHandle) -> None:
        self.handle = handle
        self.context = ssl.create_default_context(cafile=str(handle.cluster.ca_file))

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        token: str | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> RawResponse:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.handle.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if auth:
            request.add_header("Authorization", f"Bearer {token or self.handle.cluster.admin_token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return RawResponse(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            return RawResponse(exc.code, exc.headers, exc.read())


@pytest.fixture
def raw(simulated_cluster: ClusterHandle) -> Raw:
    return Raw(simulated_cluster)


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A minimal valid pod manifest."""
    body: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": body,
    }


def eventually(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds (for the simulator's asynchronous controllers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
