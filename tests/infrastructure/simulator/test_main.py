"""The standalone command: serves, writes a kubeconfig, saves state on exit and loads it on start."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from infrastructure.simulator import cluster as cluster_module


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infrastructure.simulator",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not kubeconfig.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kubeconfig.exists()
    return process, kubeconfig


def _core(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def test_standalone_serves_and_keeps_state_across_runs(tmp_path):
    state = tmp_path / "state.json"
    process, kubeconfig = _start(tmp_path, "--state", str(state))
    try:
        assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"].startswith(
            "https://"
        )
        api = _core(kubeconfig)
        assert {n.metadata.name for n in api.list_namespace().items} == {"default", "kube-system"}
        api.create_namespaced_config_map("default", {"metadata": {"name": "kept"}})
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert any(o["object"]["metadata"]["name"] == "kept" for o in json.loads(state.read_text())["objects"])
    first_token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    process, kubeconfig = _start(tmp_path, "--state", str(state))
    try:
        assert _core(kubeconfig).read_namespaced_config_map("kept", "default").metadata.name == "kept"
        assert yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"] == first_token
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def test_profiles_go_to_the_loader_hook(monkeypatch):
    loaded = []

    class Profiles:
        @staticmethod
        def load_profile(cluster, name):
            loaded.append(name)

    monkeypatch.setattr(cluster_module.importlib, "import_module", lambda name: Profiles)
    cluster = cluster_module.SimulatedCluster(tls=False)
    cluster.load_profile("demo")
    assert loaded == ["demo"]
    assert cluster.store.list("namespaces") == []
    cluster.load_profile(None)
    assert loaded == ["demo"]
    assert len(cluster.store.list("namespaces")) == 2


def test_without_a_profile_loader_only_default_namespaces_exist(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(cluster_module.importlib, "import_module", missing)
    cluster = cluster_module.SimulatedCluster(tls=False)
    cluster.load_profile("demo")
    assert [n["metadata"]["name"] for n in cluster.store.list("namespaces")] == ["default", "kube-system"]


@pytest.mark.parametrize("args", [[], ["--port", "1"]])
def test_kubeconfig_is_required(args):
    result = subprocess.run(
        [sys.executable, "-m", "infrastructure.simulator", *args], capture_output=True, timeout=20
    )
    assert result.returncode == 2
    assert b"--kubeconfig" in result.stderr
