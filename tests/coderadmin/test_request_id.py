"""X-Request-ID and the ids every log line carries (request, user, environment)."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from coderadmin import logs
from coderadmin.celery import app as celery_app
from coderadmin.logs import ContextFilter, JsonFormatter
from coderadmin.roles import Role
from environments.states import State
from tests.environments import cluster_support as cs
from tests.environments.factories import EnvironmentFactory
from tests.factories import site_admin


class Capture(logging.Handler):
    """Formats records as production does (context filter + JSON)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured():
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.django_db
def test_every_response_carries_a_new_request_id():
    first = Client().get("/healthz")["X-Request-ID"]
    second = Client().get(reverse("login"))["X-Request-ID"]
    assert len(first) == 32
    assert first != second


@pytest.mark.django_db
def test_a_sane_incoming_request_id_is_kept_and_a_bad_one_replaced():
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="abc-123.X")["X-Request-ID"] == "abc-123.X"
    replaced = Client().get("/healthz", HTTP_X_REQUEST_ID='evil"\n{}')["X-Request-ID"]
    assert replaced != 'evil"\n{}'
    assert len(replaced) == 32


@celery_app.task(name="tests.request_id.logs")
def _logging_task() -> None:
    logging.getLogger("tests.task").info("inside the task")


@pytest.mark.django_db
def test_log_lines_carry_request_user_and_environment_ids(clients, captured, monkeypatch):
    env = EnvironmentFactory(state=State.RUNNING)
    from environments import views

    original = views.render

    def logging_render(*args, **kwargs):
        logging.getLogger("tests.view").info("rendering")
        return original(*args, **kwargs)

    monkeypatch.setattr(views, "render", logging_render)  # a log line written inside the view
    client = clients["admin"]
    response = client.get(reverse("environments:detail", args=[env.pk]), HTTP_X_REQUEST_ID="req-42")
    assert response["X-Request-ID"] == "req-42"
    [line] = [line for line in captured if line["logger"] == "tests.view"]
    assert line["request_id"] == "req-42"
    assert line["environment_id"] == env.pk
    assert line["user_id"] == response.wsgi_request.user.pk


def test_lines_outside_any_request_have_no_ids(captured):
    logging.getLogger("tests.plain").info("background")
    [line] = [line for line in captured if line["logger"] == "tests.plain"]
    assert not set(logs.CONTEXT_FIELDS) & set(line)


def test_bind_sets_ids_for_a_block_only(captured):
    with logs.bind(environment_id=7):
        logging.getLogger("tests.bound").info("inside")
    logging.getLogger("tests.bound").info("after")
    inside, after = [line for line in captured if line["logger"] == "tests.bound"]
    assert inside["environment_id"] == 7
    assert "environment_id" not in after


_seen_in_tasks: list[str | None] = []


@celery_app.task(name="tests.request_id.remember")
def _remembering_task() -> None:
    _seen_in_tasks.append(logs.current("request_id"))


@pytest.mark.django_db(transaction=True)
def test_tasks_log_with_the_request_id_of_the_request_that_sent_them():
    """Through a real worker: the id travels in a message header and is bound while the task runs
    (what ContextFilter puts on each line, as the eager test below shows end to end)."""
    _seen_in_tasks.clear()
    with cs.celery_worker():
        with logs.bind(request_id="from-web"):
            _remembering_task.delay()
        cs.eventually(lambda: _seen_in_tasks, what="task ran")
    assert _seen_in_tasks == ["from-web"]


def test_an_eager_task_keeps_the_request_id_too(captured):
    with logs.bind(request_id="eager-web"):
        _logging_task.apply(headers={logs.REQUEST_ID_HEADER: logs.current("request_id")})
    [line] = [line for line in captured if line["logger"] == "tests.task"]
    assert line["request_id"] == "eager-web"


def test_environment_tasks_log_with_the_environment_id(captured):
    @celery_app.task(name="environments.tests_only_probe")
    def probe(environment_id: int, generation: int) -> None:
        logging.getLogger("tests.envtask").info("working")

    probe.apply(args=(99, 1))
    [line] = [line for line in captured if line["logger"] == "tests.envtask"]
    assert line["environment_id"] == 99
    assert line["request_id"]


@pytest.fixture
def role_groups():
    """The role groups, which a transactional test's flush may have removed with the other rows."""
    for role in Role:
        Group.objects.get_or_create(name=role.value)


@pytest.mark.django_db(transaction=True)
def test_ids_reach_log_lines_under_asgi_too(role_groups, captured, monkeypatch):
    """The web process runs on ASGI (uvicorn workers): the ids cross the sync/async boundaries."""
    import asyncio

    from django.test import AsyncClient

    env = EnvironmentFactory(state=State.RUNNING)
    from environments import views

    original = views.render

    def logging_render(*args, **kwargs):
        logging.getLogger("tests.asgi").info("rendering")
        return original(*args, **kwargs)

    monkeypatch.setattr(views, "render", logging_render)
    admin = site_admin(username="asgi-admin")
    client = AsyncClient()

    async def visit():
        await client.aforce_login(admin)
        return await client.get(
            reverse("environments:detail", args=[env.pk]), headers={"X-Request-ID": "asgi-1"}
        )

    response = asyncio.run(visit())
    assert response.status_code == 200
    assert response["X-Request-ID"] == "asgi-1"
    [line] = [line for line in captured if line["logger"] == "tests.asgi"]
    assert (line["request_id"], line["user_id"], line["environment_id"]) == ("asgi-1", admin.pk, env.pk)
