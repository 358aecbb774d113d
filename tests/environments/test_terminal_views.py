"""The terminal page, the Connect panel, and the exec target chosen for each kind of environment."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from websocket import WebSocketConnectionClosedException

from environments import terminal
from environments.states import State
from infrastructure.models import CvmBackend
from infrastructure.supervisor import contract
from tests.environments.factories import EnvironmentFactory, ImageFactory
from tests.factories import UserFactory, site_admin, site_manager

pytestmark = pytest.mark.django_db


def _environment(
    owner=None, *, state=State.RUNNING, cvm=False, backend="", entrypoint="", pod_name="alice--dev", **image
):
    return EnvironmentFactory(
        owner=owner or UserFactory(),
        image=ImageFactory(username="coder", **image),
        state=state,
        cvm=cvm,
        cvm_backend=backend,
        entrypoint=entrypoint,
        namespace="coderadmin-environments",
        pod_name=pod_name,
    )


# --- exec target ----------------------------------------------------------------------------------


def test_supervisor_cvm_execs_docker_exec_into_the_inner_container() -> None:
    target = terminal.exec_target(_environment(cvm=True, backend=CvmBackend.SUPERVISOR))
    assert target.container == contract.SUPERVISOR_CONTAINER_NAME
    assert target.command == (
        "docker",
        "exec",
        "-it",
        "-e",
        "TERM=xterm-256color",
        "workspace",
        "su",
        "-",
        "coder",
    )
    assert target.kubectl == (
        "kubectl exec -it -n coderadmin-environments alice--dev -c supervisor -- "
        "docker exec -it -e TERM=xterm-256color workspace su - coder"
    )


def test_runtimeclass_cvm_execs_su_in_the_environment_container() -> None:
    target = terminal.exec_target(_environment(cvm=True, backend=CvmBackend.RUNTIMECLASS))
    assert (target.container, target.command) == (contract.ENVIRONMENT_CONTAINER_NAME, ("su", "-", "coder"))


@pytest.mark.parametrize(("uid", "command"), [(None, ("su", "-", "coder")), (1000, ("/bin/sh", "-l"))])
def test_standard_environment_command_depends_on_the_image_uid(uid, command) -> None:
    target = terminal.exec_target(_environment(run_as_uid=uid))
    assert (target.container, target.command, target.user) == ("workspace", command, "coder")


def test_what_to_expect() -> None:
    init = terminal.what_to_expect(
        _environment(cvm=True, backend=CvmBackend.SUPERVISOR, entrypoint=contract.INIT_ENTRYPOINT)
    )
    assert any("Docker works inside" in line for line in init)
    assert any("systemd is PID 1" in line for line in init)
    keepalive = terminal.what_to_expect(
        _environment(
            cvm=True, backend=CvmBackend.SUPERVISOR, entrypoint=contract.KEEPALIVE_ENTRYPOINT, pod_name="b"
        )
    )
    assert any("no systemd" in line for line in keepalive)
    assert any("no Docker daemon" in line for line in terminal.what_to_expect(_environment(pod_name="c")))


# --- terminal page -------------------------------------------------------------------------------


def test_owner_gets_the_terminal_page_with_a_strict_policy(client) -> None:
    owner = UserFactory()
    environment = _environment(owner)
    client.force_login(owner)
    response = client.get(reverse("environments:terminal", args=[environment.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-socket-path="/ws/environments/{environment.pk}/terminal/"' in html
    assert "Shell as <strong>coder</strong>" in html
    nonce = re.search(r'data-style-nonce="([^"]+)"', html).group(1)
    policy = response["Content-Security-Policy"]
    assert f"style-src 'self' 'nonce-{nonce}'" in policy
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert not re.search(r"<script(?![^>]*\ssrc=)", html), "no inline scripts"
    assert " style=" not in html and "<style" not in html


def test_terminal_page_says_when_the_environment_is_not_running(client) -> None:
    owner = UserFactory()
    environment = _environment(owner, state=State.OFF)
    client.force_login(owner)
    html = client.get(reverse("environments:terminal", args=[environment.pk])).content.decode()
    assert "The environment is off: start it to use the terminal." in html
    assert 'data-running="false"' in html


def test_site_admin_sees_that_the_session_is_shown_to_the_owner(client) -> None:
    environment = _environment()
    client.force_login(site_admin())
    html = client.get(reverse("environments:terminal", args=[environment.pk])).content.decode()
    assert "this session is shown to the owner" in html


def test_others_cannot_get_the_terminal_page(client) -> None:
    environment = _environment()
    url = reverse("environments:terminal", args=[environment.pk])
    assert client.get(url).status_code == 302  # to the sign-in page
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.force_login(site_manager())
    assert client.get(url).status_code == 403


# --- Connect panel -------------------------------------------------------------------------------


def test_connect_panel_for_the_owner(client) -> None:
    owner = UserFactory()
    environment = _environment(owner, cvm=True, backend=CvmBackend.SUPERVISOR, entrypoint="/sbin/init")
    client.force_login(owner)
    html = client.get(reverse("environments:detail", args=[environment.pk])).content.decode()
    assert 'id="open-terminal"' in html
    assert reverse("environments:terminal", args=[environment.pk]) in html
    kubectl = (
        "kubectl exec -it -n coderadmin-environments alice--dev -c supervisor -- "
        "docker exec -it -e TERM=xterm-256color workspace su - coder"
    )
    assert f'<code id="kubectl-command">{kubectl}</code>' in html
    assert "systemd is PID 1" in html


def test_connect_panel_without_the_button_for_a_site_manager(client) -> None:
    environment = _environment()
    client.force_login(site_manager())
    html = client.get(reverse("environments:detail", args=[environment.pk])).content.decode()
    assert 'id="kubectl-command"' in html
    assert 'id="open-terminal"' not in html


def test_no_connect_panel_unless_running(client) -> None:
    owner = UserFactory()
    environment = _environment(owner, state=State.OFF)
    client.force_login(owner)
    html = client.get(reverse("environments:detail", args=[environment.pk])).content.decode()
    assert 'id="connect-heading"' not in html


def test_input_after_the_stream_ended_is_dropped() -> None:
    class Closed:
        def is_open(self) -> bool:
            return True

        def write_channel(self, channel: int, data: str) -> None:
            raise WebSocketConnectionClosedException("socket is already closed.")

    bridge = terminal.ExecBridge(terminal.exec_target(_environment()), lambda kind, text: None)
    bridge._ws = Closed()
    bridge.write("ls\r")
    bridge.resize(80, 24)
