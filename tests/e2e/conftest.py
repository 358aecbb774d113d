"""The whole product for browser journeys: the ASGI application on uvicorn (pages and the terminal
WebSocket, as in production), the simulated cluster, a real Celery worker, the watcher, and Chromium.

Chromium is Debian's (``/usr/bin/chromium``) driven by Playwright's sync API. Every journey gets a
fresh browser context; screenshots go to ``test-artifacts/screenshots/<journey>/`` (git-ignored).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import uvicorn
from channels.routing import ProtocolTypeRouter
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from playwright.sync_api import Browser, Page, sync_playwright

from coderadmin.roles import Role
from infrastructure import gateway as gw
from infrastructure.simulator.testing import ClusterHandle
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.environments import cluster_support as cs

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "journey-password-4711"
SYSTEMD = "ghcr.io/coderadmin/example-systemd"
PLAIN = "ghcr.io/coderadmin/example-plain"
UNPULLABLE = "registry.invalid/team/app"


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Per test: a Playwright kept open across tests would stop other suites from starting theirs."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(transactional_db) -> Iterator[str]:
    """The product's ASGI application on uvicorn in a thread (static files from the finders)."""
    from coderadmin import asgi

    application = ProtocolTypeRouter(
        {
            "http": ASGIStaticFilesHandler(asgi.django_application),
            "websocket": asgi.application.application_mapping["websocket"],
        }
    )
    config = uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def shot(request) -> Callable[[Page, str], Path]:
    """``shot(page, "step")`` saves test-artifacts/screenshots/<journey>/<nn>-<step>.png."""
    folder = SCREENSHOTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    counter = iter(range(1, 100))

    def take(tab: Page, step: str) -> Path:
        path = folder / f"{next(counter):02d}-{step}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take


def make_account(username: str, role: Role) -> object:
    """An account with ``role``; the role groups are made again because transactional tests flush them."""
    group, _ = Group.objects.get_or_create(name=role.value)
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    user.groups.add(group)
    return user


def sign_in(tab: Page, username: str) -> None:
    tab.goto("/accounts/login/")
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(lambda url: "/accounts/login/" not in url)


@contextmanager
def _start(profile: str, scale: float, tmp_path: Path) -> Iterator[ClusterHandle]:
    with ExitStack() as stack:
        handle = stack.enter_context(cs.running_profile(profile, tmp_path, scale=scale))
        stack.enter_context(cs.sqlite_waits_for_locks())
        stack.enter_context(cs.celery_worker())
        stack.enter_context(cs.running_watcher(gw.Gateway(handle.api_client), tmp_path, watch_timeout=2))
        yield handle


@pytest.fixture
def product(tmp_path: Path, server: str) -> Callable[..., ClusterHandle]:
    """``product(profile="demo", scale=...)``: the simulated cluster with the profile on a fast clock,
    the gateway pointed at it, a real Celery worker and the watcher, for the rest of the test."""
    with ExitStack() as stack:

        def start(profile: str = "demo", scale: float = 0.01) -> ClusterHandle:
            return stack.enter_context(_start(profile, scale, tmp_path))

        yield start
