"""The environments pages through the test client: list, create, environment page, live partial, actions."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from coderadmin.models import AuditEntry
from environments.models import Environment
from environments.states import State
from infrastructure.models import InfrastructureSettings
from tests.environments.factories import EnvironmentEventFactory, EnvironmentFactory, ImageTagFactory
from tests.factories import auditor, member, site_admin, site_manager

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _local_cache(settings, tmp_path):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}
    }


@pytest.fixture
def owner():
    return member(username="mia")


@pytest.fixture
def tag():
    return ImageTagFactory(
        image__repository="registry.example.com/team/dev",
        image__min_cpu_millicores=500,
        image__min_memory_mib=1024,
        image__min_disk_gib=5,
        tag="1.0",
    )


@pytest.fixture
def env(owner, tag):
    return EnvironmentFactory(owner=owner, image=tag.image, tag="1.0", name="web", state=State.RUNNING)


@pytest.fixture
def people(owner):
    return {
        "owner": owner,
        "other": member(username="oscar"),
        "auditor": auditor(username="aud"),
        "manager": site_manager(username="max"),
        "admin": site_admin(username="ada"),
    }


def detail_url(env) -> str:
    return reverse("environments:detail", args=[env.pk])


# --- List ---------------------------------------------------------------------------------------


def test_list_needs_login():
    response = Client().get(reverse("environments:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_member_sees_only_own_environments_with_state_badges(owner, tag):
    EnvironmentFactory(owner=owner, image=tag.image, name="mine", state=State.BUILDING)
    EnvironmentFactory(image=tag.image, name="theirs")
    response = client_for(owner).get(reverse("environments:list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert ">mine</a>" in body
    assert "theirs" not in body
    assert '<span class="badge state state-building">Building</span>' in body
    assert 'name="owner"' not in body  # no owner filter for members


@pytest.mark.parametrize("kind", ["manager", "admin", "auditor"])
def test_roles_that_see_all_get_everyones_environments_and_an_owner_filter(people, tag, kind):
    EnvironmentFactory(owner=people["owner"], image=tag.image, name="mine")
    EnvironmentFactory(owner=people["other"], image=tag.image, name="theirs")
    client = client_for(people[kind])
    body = client.get(reverse("environments:list")).content.decode()
    assert ">mine</a>" in body and ">theirs</a>" in body
    assert 'name="owner"' in body
    filtered = client.get(reverse("environments:list"), {"owner": "oscar"}).content.decode()
    assert ">theirs</a>" in filtered and ">mine</a>" not in filtered


def test_member_cannot_use_the_owner_filter_to_see_others(people, tag):
    EnvironmentFactory(owner=people["other"], image=tag.image, name="theirs")
    body = client_for(people["owner"]).get(reverse("environments:list"), {"owner": "oscar"}).content.decode()
    assert "theirs" not in body


def test_list_is_paginated(owner, tag):
    for i in range(30):
        EnvironmentFactory(owner=owner, image=tag.image, name=f"env-{i:02d}")
    client = client_for(owner)
    first = client.get(reverse("environments:list")).content.decode()
    second = client.get(reverse("environments:list"), {"page": 2}).content.decode()
    assert "Page 1 of 2" in first
    assert len(re.findall(r">env-\d\d</a>", first)) == 25
    assert len(re.findall(r">env-\d\d</a>", second)) == 5


@pytest.mark.parametrize("rows", [1, 30])
def test_list_query_count_does_not_grow_with_rows(people, tag, rows, django_assert_num_queries):
    for i in range(rows):
        EnvironmentFactory(owner=people["other"] if i % 2 else people["owner"], image=tag.image, name=f"e{i}")
    client = client_for(people["manager"])
    # session, user, role groups, count, page rows (owner and image joined)
    with django_assert_num_queries(5):
        response = client.get(reverse("environments:list"))
    assert response.status_code == 200


def test_list_polls_while_something_changes_and_stops_with_286(owner, tag):
    building = EnvironmentFactory(owner=owner, image=tag.image, name="busy", state=State.BUILDING)
    client = client_for(owner)
    page = client.get(reverse("environments:list")).content.decode()
    assert 'hx-trigger="every 5s"' in page
    assert client.get(reverse("environments:list"), **HTMX).status_code == 200
    Environment.objects.filter(pk=building.pk).update(state=State.RUNNING)
    response = client.get(reverse("environments:list"), **HTMX)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()
    assert "<html" not in response.content.decode()


# --- Create -------------------------------------------------------------------------------------


def create_data(tag, **overrides) -> dict:
    data = {
        "name": "dev",
        "image_tag": str(tag.pk),
        "cpu_millicores": "1000",
        "memory_mib": "2048",
        "disk_gib": "10",
        "gpu_count": "0",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_create_page_shows_limits_and_only_enabled_images(owner, tag):
    ImageTagFactory(image__repository="registry.example.com/off", image__enabled=False)
    ImageTagFactory(image__repository="registry.example.com/old", image__deprecated=True, tag="9")
    body = client_for(owner).get(reverse("environments:create")).content.decode()
    assert "registry.example.com/team/dev:1.0 (default)" in body
    assert "registry.example.com/off" not in body
    assert "registry.example.com/old (deprecated)" in body
    assert "needs at least 500 millicores, 1024 MiB, 5 GiB" in body
    assert "at most 8000 millicores" in body
    assert 'data-min-cpu_millicores="500"' in body


def test_cvm_checkbox_is_disabled_with_an_explanation_when_cvms_are_off(owner, tag):
    body = client_for(owner).get(reverse("environments:create")).content.decode()
    checkbox = re.search(r"<input[^>]*name=\"cvm\"[^>]*>", body).group(0)
    assert "disabled" in checkbox
    assert 'aria-describedby="id_cvm_helptext"' in checkbox
    assert "Container-based virtual machines are turned off on this site" in body


def test_cvm_checkbox_is_ticked_when_cvms_default(owner, tag):
    InfrastructureSettings.objects.update_or_create(
        pk=1, defaults={"cvm_enabled": True, "default_to_cvm": True}
    )
    body = client_for(owner).get(reverse("environments:create")).content.decode()
    checkbox = re.search(r"<input[^>]*name=\"cvm\"[^>]*>", body).group(0)
    assert "checked" in checkbox and "disabled" not in checkbox


def test_create_makes_the_environment_and_enqueues_one_build(owner, tag, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(owner).post(reverse("environments:create"), create_data(tag))
    env = Environment.objects.get(owner=owner, name="dev")
    assert response.status_code == 302
    assert response["Location"] == detail_url(env)
    assert (env.image, env.tag, env.cpu_millicores, env.memory_mib, env.disk_gib) == (
        tag.image,
        "1.0",
        1000,
        2048,
        10,
    )
    assert env.state == State.CREATING and env.cvm is False
    assert len(callbacks) == 1
    assert AuditEntry.objects.filter(action="environment.create", target_id=str(env.pk)).exists()


def test_create_a_cvm_when_enabled(owner, tag):
    InfrastructureSettings.objects.update_or_create(pk=1, defaults={"cvm_enabled": True})
    client_for(owner).post(reverse("environments:create"), create_data(tag, cvm="on"))
    assert Environment.objects.get(name="dev").cvm is True


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "Dev"}, "name", "Use lowercase letters"),
        ({"name": "a" * 33}, "name", "at most 32 characters"),
        ({"name": "x" * 200_000}, "name", "at most 32 characters"),
        ({"name": "new"}, "name", "is reserved"),
        ({"name": "dév"}, "name", "Use lowercase letters"),
        ({"name": "a--b"}, "name", "Use lowercase letters"),
        ({"name": "-ab"}, "name", "Use lowercase letters"),
        ({"cpu_millicores": "lots"}, "cpu_millicores", "Enter a whole number."),
        ({"cpu_millicores": "9" * 5000}, "cpu_millicores", "Enter a whole number."),
        ({"cpu_millicores": "100"}, "cpu_millicores", "This image needs at least 500 millicores."),
        ({"cpu_millicores": "8001"}, "cpu_millicores", "less than or equal to 8000"),
        ({"memory_mib": "-5"}, "memory_mib", "greater than or equal to 1"),
        ({"disk_gib": "2"}, "disk_gib", "This image needs at least 5 GiB."),
        ({"disk_gib": "1.5"}, "disk_gib", "Enter a whole number."),
        ({"gpu_count": "1"}, "gpu_count", "less than or equal to 0"),
        ({"image_tag": "999999"}, "image_tag", "Select a valid choice."),
        ({"image_tag": "🙂"}, "image_tag", "Select a valid choice."),
        ({"cvm": "on"}, "cvm", "Container-based virtual machines are turned off"),
    ],
)
def test_bad_input_is_a_form_error_and_creates_nothing(
    owner, tag, overrides, field, message, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(owner).post(reverse("environments:create"), create_data(tag, **overrides))
    body = response.content.decode()
    assert response.status_code == 400
    assert message in body
    assert f'id="id_{field}_error"' in body
    assert re.search(rf'aria-describedby="[^"]*id_{field}_error', body)
    assert 'role="alert"' in body
    assert not Environment.objects.exists()
    assert callbacks == []


def test_disabled_image_cannot_be_chosen_even_by_a_forged_post(owner, tag):
    tag.image.enabled = False
    tag.image.save()
    response = client_for(owner).post(reverse("environments:create"), create_data(tag))
    assert response.status_code == 400
    assert not Environment.objects.exists()


def test_gpus_are_refused_for_cvms_whatever_is_posted(owner, tag):
    InfrastructureSettings.objects.update_or_create(pk=1, defaults={"cvm_enabled": True, "max_gpu_count": 4})
    response = client_for(owner).post(
        reverse("environments:create"), create_data(tag, cvm="on", gpu_count="1")
    )
    assert response.status_code == 400
    assert "GPUs are not supported in container-based virtual machines." in response.content.decode()
    assert not Environment.objects.exists()


def test_duplicate_name_is_a_form_error(owner, tag, env):
    response = client_for(owner).post(reverse("environments:create"), create_data(tag, name="web"))
    assert response.status_code == 400
    assert "You already have an environment with this name." in response.content.decode()
    assert Environment.objects.count() == 1


def test_per_member_limit(owner, tag, env):
    InfrastructureSettings.objects.update_or_create(pk=1, defaults={"max_environments_per_member": 1})
    response = client_for(owner).post(reverse("environments:create"), create_data(tag))
    assert response.status_code == 400
    assert "the most this site allows" in response.content.decode()
    assert Environment.objects.count() == 1


def test_oversized_request_body_is_refused_without_creating(owner, tag):
    response = client_for(owner).post(reverse("environments:create"), create_data(tag, name="a" * 3_000_000))
    assert response.status_code == 400
    assert not Environment.objects.exists()


def test_create_without_images_explains_why(owner):
    body = client_for(owner).get(reverse("environments:create")).content.decode()
    assert "No images are offered yet" in body


@pytest.mark.parametrize("method", ["get", "post"])
def test_auditors_cannot_create(people, tag, method):
    response = getattr(client_for(people["auditor"]), method)(
        reverse("environments:create"), create_data(tag)
    )
    assert response.status_code == 403
    assert not Environment.objects.exists()


def test_create_needs_login(tag):
    response = Client().post(reverse("environments:create"), create_data(tag))
    assert response.status_code == 302
    assert not Environment.objects.exists()


# --- Environment page and live partial ----------------------------------------------------------


def test_environment_page_shows_state_details_and_escaped_log(owner, env):
    env.status_reason = "image could not be pulled"
    env.node_name = "node-1"
    env.entrypoint = Environment.Entrypoint.INIT
    env.state = State.ERROR
    env.save()
    EnvironmentEventFactory(environment=env, message="first")
    EnvironmentEventFactory(environment=env, message='<script>alert("x")</script>', type="error")
    body = client_for(owner).get(detail_url(env)).content.decode()
    assert '<span class="badge state state-error">Error</span>' in body
    assert "The environment failed." in body
    assert "image could not be pulled" in body
    assert "node-1" in body and "/sbin/init" in body
    assert "registry.example.com/team/dev:1.0" in body
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert body.index(">first<") < body.index("&lt;script&gt;")  # newest last
    assert "hx-trigger" not in body  # final: no polling


@pytest.mark.parametrize("events", [1, 50])
def test_environment_page_query_count_does_not_grow_with_events(
    owner, env, events, django_assert_num_queries
):
    for i in range(events):
        EnvironmentEventFactory(environment=env, message=f"line {i}")
    client = client_for(owner)
    # session, user, role groups, environment (owner and image joined), events
    with django_assert_num_queries(5):
        assert client.get(reverse("environments:live", args=[env.pk]), **HTMX).status_code == 286


def test_environment_page_has_no_inline_script_or_style(owner, env):
    body = client_for(owner).get(detail_url(env)).content.decode()
    assert "style=" not in body
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body)


def test_live_partial_polls_every_2s_until_final_then_286(owner, env):
    client = client_for(owner)
    Environment.objects.filter(pk=env.pk).update(state=State.BUILDING)
    page = client.get(detail_url(env)).content.decode()
    assert f'hx-get="{reverse("environments:live", args=[env.pk])}"' in page
    assert 'hx-trigger="every 2s"' in page
    live = client.get(reverse("environments:live", args=[env.pk]), **HTMX)
    assert live.status_code == 200
    assert "<html" not in live.content.decode()
    Environment.objects.filter(pk=env.pk).update(state=State.OFF)
    final = client.get(reverse("environments:live", args=[env.pk]), **HTMX)
    assert final.status_code == 286
    assert "hx-trigger" not in final.content.decode()
    assert '<span class="badge state state-off">Off</span>' in final.content.decode()


@pytest.mark.parametrize(
    ("state", "shown", "hidden"),
    [
        (State.RUNNING, ["stop", "rebuild", "rebuild-options", "delete"], ["start", "cancel"]),
        (State.OFF, ["start", "rebuild", "delete"], ["stop", "cancel"]),
        (State.BUILDING, ["stop", "cancel", "delete"], ["start", "rebuild", "rebuild-options"]),
        (State.ERROR, ["rebuild", "delete"], ["start", "stop", "cancel"]),
        (State.DELETING, [], ["start", "stop", "rebuild", "cancel", "delete"]),
    ],
)
def test_buttons_follow_the_allowed_actions(owner, env, state, shown, hidden):
    Environment.objects.filter(pk=env.pk).update(state=state)
    body = client_for(owner).get(detail_url(env)).content.decode()
    for word in shown:
        assert f'id="action-{word}"' in body
    for word in hidden:
        assert f'id="action-{word}"' not in body


@pytest.mark.parametrize("kind", ["owner", "auditor", "manager", "admin"])
def test_who_may_view_an_environment(people, env, kind):
    client = client_for(people[kind])
    assert client.get(detail_url(env)).status_code == 200
    assert client.get(reverse("environments:live", args=[env.pk]), **HTMX).status_code == 286


def test_auditor_sees_no_buttons(people, env):
    body = client_for(people["auditor"]).get(detail_url(env)).content.decode()
    assert "action-" not in body
    assert "You can view this environment but not change it." in body


def test_other_members_get_404_everywhere(people, env):
    client = client_for(people["other"])
    assert client.get(detail_url(env)).status_code == 404
    assert client.get(reverse("environments:live", args=[env.pk]), **HTMX).status_code == 404
    assert client.get(reverse("environments:live", args=[env.pk])).status_code == 404
    assert client.get(reverse("environments:delete", args=[env.pk])).status_code == 404
    assert client.post(reverse("environments:delete", args=[env.pk])).status_code == 404
    for action in ("start", "stop", "rebuild", "cancel"):
        assert client.post(reverse("environments:action", args=[env.pk, action])).status_code == 404
    env.refresh_from_db()
    assert env.state == State.RUNNING


def test_polling_a_deleted_environment_sends_htmx_back_to_the_list(owner, env):
    client = client_for(owner)
    url = reverse("environments:live", args=[env.pk])
    env.delete()
    response = client.get(url, **HTMX)
    assert response.status_code == 404
    assert response["HX-Redirect"] == reverse("environments:list")
    assert client.get(url).status_code == 404


def test_anonymous_visitors_go_to_login(env):
    client = Client()
    for url in (detail_url(env), reverse("environments:live", args=[env.pk])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    response = client.post(reverse("environments:action", args=[env.pk, "stop"]))
    assert response.status_code == 302
    env.refresh_from_db()
    assert env.state == State.RUNNING


def test_unknown_environment_is_404(owner):
    assert client_for(owner).get(reverse("environments:detail", args=[987654])).status_code == 404


# --- Actions ------------------------------------------------------------------------------------


def test_auditor_cannot_act(people, env):
    client = client_for(people["auditor"])
    assert client.post(reverse("environments:action", args=[env.pk, "stop"])).status_code == 403
    assert client.get(reverse("environments:delete", args=[env.pk])).status_code == 403
    assert client.post(reverse("environments:delete", args=[env.pk])).status_code == 403
    env.refresh_from_db()
    assert env.state == State.RUNNING


@pytest.mark.parametrize("kind", ["owner", "manager", "admin"])
def test_stop_turns_the_environment_off_and_is_audited(people, env, kind, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(people[kind]).post(reverse("environments:action", args=[env.pk, "stop"]))
    assert response.status_code == 302 and response["Location"] == detail_url(env)
    env.refresh_from_db()
    assert env.state == State.TURNING_OFF
    assert len(callbacks) == 1
    entry = AuditEntry.objects.get(action="environment.stop")
    assert entry.actor == people[kind]


@pytest.mark.parametrize(
    ("start_state", "action", "end_state"),
    [
        (State.OFF, "start", State.BUILDING),
        (State.RUNNING, "rebuild", State.BUILDING),
        (State.BUILDING, "cancel", State.OFF),
    ],
)
def test_actions_change_the_state(owner, env, start_state, action, end_state):
    Environment.objects.filter(pk=env.pk).update(state=start_state)
    client_for(owner).post(reverse("environments:action", args=[env.pk, action]))
    env.refresh_from_db()
    assert env.state == end_state


def test_htmx_action_returns_the_live_partial(owner, env):
    response = client_for(owner).post(reverse("environments:action", args=[env.pk, "stop"]), **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert "Turning off" in body
    assert 'hx-trigger="every 2s"' in body


def test_htmx_action_that_does_not_fit_the_state_gets_409(owner, env):
    response = client_for(owner).post(reverse("environments:action", args=[env.pk, "start"]), **HTMX)
    assert response.status_code == 409
    assert "Environment is Running; it cannot be started." in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    env.refresh_from_db()
    assert env.state == State.RUNNING


def test_form_action_that_does_not_fit_the_state_redirects_with_the_message(owner, env):
    client = client_for(owner)
    response = client.post(reverse("environments:action", args=[env.pk, "cancel"]), follow=True)
    assert response.redirect_chain[-1][0] == detail_url(env)
    assert "Environment is Running; there is no build to cancel." in response.content.decode()


def test_unknown_action_is_404(owner, env):
    assert client_for(owner).post(reverse("environments:action", args=[env.pk, "explode"])).status_code == 404


def test_actions_refuse_get(owner, env):
    assert client_for(owner).get(reverse("environments:action", args=[env.pk, "stop"])).status_code == 405


def test_delete_asks_for_confirmation_then_deletes(owner, env, django_capture_on_commit_callbacks):
    client = client_for(owner)
    confirm = client.get(reverse("environments:delete", args=[env.pk]))
    body = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Delete web?" in body and "and its disk" in body
    env.refresh_from_db()
    assert env.state == State.RUNNING  # asking changes nothing
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("environments:delete", args=[env.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("environments:list")
    env.refresh_from_db()
    assert env.state == State.DELETING
    assert len(callbacks) == 1


def test_delete_of_a_deleting_environment_is_refused(owner, env):
    Environment.objects.filter(pk=env.pk).update(state=State.DELETING)
    client = client_for(owner)
    assert (
        "already being deleted" in client.get(reverse("environments:delete", args=[env.pk])).content.decode()
    )
    response = client.post(reverse("environments:delete", args=[env.pk]), **HTMX)
    assert response.status_code == 409


# --- CSRF ---------------------------------------------------------------------------------------


def test_posts_need_the_csrf_token(owner, env, tag):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(reverse("environments:action", args=[env.pk, "stop"])).status_code == 403
    assert client.post(reverse("environments:delete", args=[env.pk])).status_code == 403
    assert client.post(reverse("environments:create"), create_data(tag)).status_code == 403
    env.refresh_from_db()
    assert env.state == State.RUNNING
    assert Environment.objects.count() == 1


def test_post_with_the_csrf_token_works(owner, env):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    page = client.get(detail_url(env)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        reverse("environments:action", args=[env.pk, "stop"]), {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    env.refresh_from_db()
    assert env.state == State.TURNING_OFF


# --- Change and rebuild -------------------------------------------------------------------------


def rebuild_url(env) -> str:
    return reverse("environments:rebuild-options", args=[env.pk])


def test_rebuild_with_another_tag_and_more_resources(owner, env, tag, django_capture_on_commit_callbacks):
    ImageTagFactory(image=tag.image, tag="2.0", is_default=False)
    client = client_for(owner)
    page = client.get(rebuild_url(env)).content.decode()
    assert "registry.example.com/team/dev:2.0" in page
    assert "A disk can grow, never shrink." in page
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            rebuild_url(env), {"tag": "2.0", "cpu_millicores": "4000", "memory_mib": "8192", "disk_gib": "40"}
        )
    assert response.status_code == 302 and response["Location"] == detail_url(env)
    env.refresh_from_db()
    assert (env.state, env.tag, env.cpu_millicores, env.memory_mib, env.disk_gib) == (
        State.BUILDING,
        "2.0",
        4000,
        8192,
        40,
    )
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"disk_gib": "10"}, "greater than or equal to 20"),
        ({"cpu_millicores": "100"}, "greater than or equal to 500"),
        ({"memory_mib": "99999999"}, "less than or equal to 16384"),
        ({"tag": "9.9"}, "Select a valid choice."),
    ],
)
def test_rebuild_bad_input_changes_nothing(
    owner, env, overrides, message, django_capture_on_commit_callbacks
):
    data = {"tag": "1.0", "cpu_millicores": "2000", "memory_mib": "4096", "disk_gib": "20", **overrides}
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(owner).post(rebuild_url(env), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    env.refresh_from_db()
    assert env.state == State.RUNNING and env.disk_gib == 20
    assert callbacks == []


def test_rebuild_options_when_the_state_does_not_allow_it(owner, env):
    Environment.objects.filter(pk=env.pk).update(state=State.BUILDING)
    client = client_for(owner)
    assert "it can be rebuilt once" in client.get(rebuild_url(env)).content.decode()
    data = {"tag": "1.0", "cpu_millicores": "2000", "memory_mib": "4096", "disk_gib": "20"}
    assert client.post(rebuild_url(env), data).status_code == 400
    env.refresh_from_db()
    assert env.state == State.BUILDING


def test_rebuild_options_permissions(people, env):
    assert client_for(people["other"]).get(rebuild_url(env)).status_code == 404
    assert client_for(people["auditor"]).get(rebuild_url(env)).status_code == 403
    assert client_for(people["manager"]).get(rebuild_url(env)).status_code == 200
    assert Client().get(rebuild_url(env)).status_code == 302


def test_a_standard_environment_shows_its_keep_alive_or_the_images_command(owner, env):
    body = client_for(owner).get(detail_url(env)).content.decode()
    assert "<code>keep-alive</code>" in body
    env.image.command = ["/usr/bin/code-server", "--bind-addr", "0.0.0.0:8080"]
    env.image.save()
    body = client_for(owner).get(detail_url(env)).content.decode()
    assert "<code>/usr/bin/code-server --bind-addr 0.0.0.0:8080</code> (the image's command)" in body


def test_list_pages_keep_the_owner_filter(people, owner, tag):
    for i in range(30):
        EnvironmentFactory(owner=owner, image=tag.image, tag="1.0", name=f"env-{i:02d}")
    body = client_for(people["admin"]).get(reverse("environments:list") + "?owner=mia").content.decode()
    assert 'href="?owner=mia&amp;page=2">Next</a>' in body
    body = client_for(owner).get(reverse("environments:list")).content.decode()
    assert 'href="?page=2">Next</a>' in body
