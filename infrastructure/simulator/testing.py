"""Pytest plugin: the ``simulated_cluster`` fixture, a real HTTP API server per test.

Enable with ``pytest_plugins = ["infrastructure.simulator.testing"]``. The fixture starts a fresh
cluster on an ephemeral port (default and kube-system namespaces) and stops it after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from .cluster import SimulatedCluster
from .store import Store


class ClusterHandle:
    """What tests get: the cluster plus a configured official client."""

    def __init__(self, cluster: SimulatedCluster, kubeconfig_path: Path) -> None:
        self.cluster = cluster
        self.kubeconfig_path = kubeconfig_path
        self._clients: list[client.ApiClient] = []
        self.api_client = self.api_client_for_token(cluster.admin_token)

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def store(self) -> Store:
        return self.cluster.store

    def token_for_service_account(self, namespace: str, name: str) -> str:
        return self.cluster.token_for_service_account(namespace, name)

    def api_client_for_token(self, token: str) -> client.ApiClient:
        """An official client authenticated with ``token`` against this cluster."""
        configuration = client.Configuration()
        configuration.host = self.cluster.url
        configuration.ssl_ca_cert = str(self.cluster.ca_file) if self.cluster.ca_file else None
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        api_client = client.ApiClient(configuration)
        self._clients.append(api_client)
        return api_client

    def close(self) -> None:
        for api_client in self._clients:
            api_client.close()
        self.cluster.close()


@pytest.fixture
def simulated_cluster(tmp_path: Path) -> Iterator[ClusterHandle]:
    cluster = SimulatedCluster(bookmark_interval=0.2)
    cluster.load_profile(None)
    cluster.start()
    handle = ClusterHandle(cluster, cluster.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        yield handle
    finally:
        handle.close()
