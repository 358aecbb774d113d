"""The terminal page in Chromium: xterm.js over the WebSocket, through uvicorn, into the simulated cluster."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from channels.routing import ProtocolTypeRouter
from django.apps import apps as django_apps
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.urls import reverse
from playwright.sync_api import expect, sync_playwright

from infrastructure import gateway
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.environments.terminal_support import running_environment, session_cookie
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asgi_server() -> Iterator[str]:
    """The product's ASGI application (static files from the finders) on uvicorn, in a thread."""
    from coderadmin import asgi

    application = ProtocolTypeRouter(
        {
            "http": ASGIStaticFilesHandler(asgi.django_application),
            "websocket": asgi.application.application_mapping["websocket"],
        }
    )
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_terminal_shows_whoami_and_docker_ps(simulated_cluster, asgi_server) -> None:
    importlib.import_module("coderadmin.migrations.0003_roles").create_roles(django_apps, None)
    gateway.reset_api_client(simulated_cluster.api_client)
    owner = UserFactory()
    environment = running_environment(simulated_cluster, owner, kind="supervisor")
    cookie = session_cookie(owner).decode().split("=", 1)[1]
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1100, "height": 700})
            context.add_cookies([{"name": "sessionid", "value": cookie, "url": asgi_server}])
            page = context.new_page()
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.goto(asgi_server + reverse("environments:terminal", args=[environment.pk]))
            expect(page.locator("#terminal-status")).to_have_text(
                f"Connected to {environment.name} as coder.", timeout=15_000
            )
            rows = page.locator(".xterm-rows")
            expect(rows).to_contain_text("coder@", timeout=15_000)
            page.keyboard.type("whoami\n")
            expect(rows).to_contain_text("whoami", timeout=10_000)
            page.keyboard.type("docker ps\n")
            expect(rows).to_contain_text("CONTAINER ID", timeout=10_000)
            text = rows.inner_text()
            page.click("#terminal-reconnect")
            expect(rows).to_contain_text("coder@", timeout=15_000)
            browser.close()
    finally:
        gateway.reset_api_client(None)
    lines = [line.strip() for line in text.splitlines()]
    assert "coder" in lines  # the output of whoami on a line of its own
    assert not errors, errors  # no Content-Security-Policy violation, no script error
