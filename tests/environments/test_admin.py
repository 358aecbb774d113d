"""The environments and images admin, through the admin views as a superuser."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.urls import reverse
from kubernetes import client as k8s

from coderadmin.models import AuditEntry
from environments.models import Environment, EnvironmentEvent, Image
from environments.states import State
from infrastructure import gateway as gw
from infrastructure.models import InfrastructureSettings
from tests.environments.factories import (
    EnvironmentEventFactory,
    EnvironmentFactory,
    ImageFactory,
    ImageTagFactory,
    OwnerFactory,
)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:environments_environment_changelist")
IMAGES = reverse("admin:environments_image_changelist")
IMAGE_ADD = reverse("admin:environments_image_add")


@pytest.fixture
def operator(client):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser("operator", "op@example.com", "pw-not-used-1234")
    client.force_login(user)
    return user


@pytest.fixture(autouse=True)
def private_cache(settings, request):
    """The reconciler's sweep lock lives in the cache: keep it private to this test."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


def named(env: Environment) -> Environment:
    """A row with its Kubernetes names, as the create service leaves it."""
    env.assign_kubernetes_names(InfrastructureSettings.load())
    env.save()
    return env


def environments(count: int, **fields) -> list[Environment]:
    return [named(EnvironmentFactory(**fields)) for _ in range(count)]


def act(client, action: str, envs: list[Environment], **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [env.pk for env in envs], **extra}
    return client.post(CHANGELIST, data)


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def state(env: Environment) -> str:
    return Environment.objects.get(pk=env.pk).state


# ------------------------------------------------------------------ changelist and change page


@pytest.mark.parametrize("rows", [2, 20])
def test_the_changelist_query_count_does_not_grow_with_the_rows(
    client, operator, django_assert_max_num_queries, rows
):
    for index in range(rows):
        named(EnvironmentFactory(owner=OwnerFactory(), state=State.RUNNING, node_name=f"node-{index}"))

    with django_assert_max_num_queries(9):
        response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert response.context["cl"].result_count == rows


def test_the_changelist_shows_owner_state_cvm_image_node_and_age(client, operator):
    image = ImageFactory(repository="registry.example.com/team/dev")
    env = named(
        EnvironmentFactory(name="web", image=image, tag="1.0", state=State.RUNNING, node_name="node-7")
    )

    content = client.get(CHANGELIST).content.decode()

    for text in (
        "web",
        env.owner.username,
        "Running",
        "registry.example.com/team/dev:1.0",
        "node-7",
        "minute",
    ):
        assert text in content


def test_search_finds_by_name_owner_and_pod_name(client, operator):
    alice = OwnerFactory(username="alice")
    mine = named(EnvironmentFactory(owner=alice, name="api"))
    other = named(EnvironmentFactory(name="db"))

    def found(query: str) -> set[int]:
        return {env.pk for env in client.get(CHANGELIST, {"q": query}).context["cl"].result_list}

    assert found("alice") == {mine.pk}
    assert found("db") == {other.pk}
    assert found(mine.pod_name) == {mine.pk}


def test_filters_by_state_cvm_image_and_owner(client, operator):
    running = named(EnvironmentFactory(state=State.RUNNING, cvm=True))
    off = named(EnvironmentFactory(state=State.OFF))

    def found(**query: str) -> set[int]:
        return {env.pk for env in client.get(CHANGELIST, query).context["cl"].result_list}

    assert found(state__exact="running") == {running.pk}
    assert found(cvm__exact="0") == {off.pk}
    assert found(image__id__exact=str(off.image_id)) == {off.pk}
    assert found(owner__id__exact=str(running.owner_id)) == {running.pk}


def test_the_change_page_is_read_only_with_events_newest_first(client, operator):
    env = named(EnvironmentFactory(state=State.RUNNING))
    EnvironmentEventFactory(environment=env, message="first line of the log")
    EnvironmentEventFactory(environment=env, message="second line of the log")
    url = reverse("admin:environments_environment_change", args=[env.pk])

    response = client.get(url)

    content = response.content.decode()
    assert content.index("second line of the log") < content.index("first line of the log")
    assert env.pod_name in content and env.pvc_name in content
    assert 'name="state"' not in content and 'name="pod_name"' not in content
    client.post(url, {"state": "off", "pod_name": "renamed"})
    assert Environment.objects.get(pk=env.pk).pod_name == env.pod_name
    assert state(env) == State.RUNNING


def test_environments_cannot_be_added_or_deleted_as_rows(client, operator):
    env = named(EnvironmentFactory())

    assert client.get(reverse("admin:environments_environment_add")).status_code == 403
    assert client.get(reverse("admin:environments_environment_delete", args=[env.pk])).status_code == 403
    assert (
        "delete_selected"
        not in client.get(CHANGELIST).context["action_form"].fields["action"].choices.__repr__()
    )


# ------------------------------------------------------------------ actions


def test_stop_reports_per_row_and_refuses_invalid_transitions_without_crashing(client, operator):
    running = named(EnvironmentFactory(name="up", state=State.RUNNING))
    off = named(EnvironmentFactory(name="down", state=State.OFF))

    response = act(client, "stop", [running, off])

    assert response.status_code == 302
    assert state(running) == State.TURNING_OFF
    assert state(off) == State.OFF
    messages = texts(response)
    assert f"Stopping: {running.owner}/up." in messages
    assert f"{off.owner}/down: Environment is Off; it cannot be stopped." in messages
    entry = AuditEntry.objects.get(action="environment.stop")
    assert entry.actor == operator and entry.target_id == str(running.pk)


def test_a_row_deleted_while_the_action_runs_is_reported(client, operator, monkeypatch):
    """The row goes between the selection and the service call (its delete finished meanwhile)."""
    from environments import services

    real_stop = services.environment_stop
    gone = named(EnvironmentFactory(name="gone", state=State.RUNNING))
    kept = named(EnvironmentFactory(name="kept", state=State.RUNNING))

    def racing(env, **kwargs):
        if env.pk == gone.pk:
            Environment.objects.filter(pk=env.pk).delete()
        return real_stop(env, **kwargs)

    monkeypatch.setattr(services, "environment_stop", racing)

    response = act(client, "stop", [gone, kept])

    messages = texts(response)
    assert f"{gone.owner}/gone: it no longer exists." in messages
    assert f"Stopping: {kept.owner}/kept." in messages
    assert state(kept) == State.TURNING_OFF


def test_start_rebuild_and_delete_call_the_services(client, operator):
    ImageTagFactory(image=(image := ImageFactory()), tag="1.0")
    off = named(
        EnvironmentFactory(state=State.OFF, image=image, cpu_millicores=500, memory_mib=1024, disk_gib=5)
    )
    failed = named(
        EnvironmentFactory(state=State.ERROR, image=image, cpu_millicores=500, memory_mib=1024, disk_gib=5)
    )
    doomed = named(EnvironmentFactory(state=State.RUNNING))

    act(client, "start", [off])
    act(client, "rebuild", [failed])
    act(client, "delete", [doomed])

    assert state(off) == State.BUILDING
    assert state(failed) == State.BUILDING
    assert state(doomed) == State.DELETING
    assert set(
        AuditEntry.objects.filter(action__startswith="environment.").values_list("action", flat=True)
    ) == {
        "environment.start",
        "environment.rebuild",
        "environment.delete",
    }


def test_a_rebuild_the_service_refuses_is_reported(client, operator):
    image = ImageFactory(enabled=False)
    ImageTagFactory(image=image, tag="1.0")
    env = named(EnvironmentFactory(name="old", state=State.OFF, image=image))

    response = act(client, "rebuild", [env])

    assert state(env) == State.OFF
    assert any(
        message.startswith(f"{env.owner}/old: ") and "disabled" in message for message in texts(response)
    )


def test_mark_error_asks_for_a_reason_on_an_intermediate_page(client, operator):
    env = named(EnvironmentFactory(name="stuck", state=State.BUILDING))

    response = act(client, "mark_error", [env])

    assert response.status_code == 200
    assert b'name="reason"' in response.content
    assert f"{env.owner}/stuck".encode() in response.content
    assert state(env) == State.BUILDING


def test_mark_error_without_a_reason_shows_the_page_again(client, operator):
    env = named(EnvironmentFactory(state=State.BUILDING))

    response = act(client, "mark_error", [env], apply="1", reason="")

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert state(env) == State.BUILDING


def test_mark_error_with_a_reason_turns_the_rows_error_and_reports_refusals(client, operator):
    env = named(EnvironmentFactory(name="stuck", state=State.BUILDING))
    going = named(EnvironmentFactory(name="going", state=State.DELETING))

    response = act(client, "mark_error", [env, going], apply="1", reason="Node lost; rebuild it.")

    assert response.status_code == 302
    row = Environment.objects.get(pk=env.pk)
    assert (row.state, row.status_reason) == (State.ERROR, "Node lost; rebuild it.")
    assert EnvironmentEvent.objects.filter(
        environment=env, type="error", message="Node lost; rebuild it."
    ).exists()
    assert state(going) == State.DELETING
    messages = texts(response)
    assert f"Marked as Error: {env.owner}/stuck." in messages
    assert any(message.startswith(f"{going.owner}/going: Environment is Deleting") for message in messages)


def test_reconcile_now_runs_a_sweep_and_reports_it(client, operator, simulated_cluster):
    gw.reset_api_client(simulated_cluster.api_client)
    try:
        gw.Gateway().ensure_namespace("coderadmin-environments")
        env = named(EnvironmentFactory(state=State.OFF))
        meta = {
            "name": "leftover",
            "labels": {
                "app.kubernetes.io/managed-by": "coderadmin",
                "coderadmin.dev/environment-id": "424242",
            },
        }
        client_api = client_api_for(simulated_cluster)
        client_api.create_namespaced_secret(
            "coderadmin-environments", {"metadata": meta, "stringData": {"a": "b"}}
        )

        response = act(client, "reconcile_now", [env])

        messages = texts(response)
        assert any(message.startswith("Reconciled namespace coderadmin-environments") for message in messages)
        assert "Orphaned objects deleted: 1 (Secret leftover)" in messages
        assert gw.Gateway().get_or_none("Secret", "coderadmin-environments", "leftover") is None
    finally:
        gw.reset_api_client(None)


def client_api_for(handle) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(handle.api_client)


def test_reconcile_now_reports_an_unreachable_cluster(client, operator):
    configuration = k8s.Configuration()
    configuration.host = "http://127.0.0.1:9"
    gw.reset_api_client(k8s.ApiClient(configuration))
    try:
        response = act(client, "reconcile_now", [named(EnvironmentFactory())])
    finally:
        gw.reset_api_client(None)

    assert any("the cluster could not be listed" in message for message in texts(response))


def test_actions_need_the_change_permission(client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    viewer = get_user_model().objects.create_user("viewer", password="pw-not-used-1234", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_environment"))
    client.force_login(viewer)
    env = named(EnvironmentFactory(state=State.RUNNING))

    act(client, "stop", [env])

    assert state(env) == State.RUNNING


# ------------------------------------------------------------------ images


def image_form(**overrides) -> dict:
    data = {
        "repository": "registry.example.com/team/private",
        "description": "",
        "tags": "1.0 2.0",
        "default_tag": "2.0",
        "username": "coder",
        "run_as_uid": "",
        "command": "",
        "min_cpu_millicores": "250",
        "min_memory_mib": "512",
        "min_disk_gib": "1",
        "registry_username": "robot",
        "registry_password": "s3cret-token",
        "enabled": "on",
        "tags-TOTAL_FORMS": "0",
        "tags-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_adding_an_image_stores_tags_and_encrypted_credentials_through_the_service(client, operator):
    response = client.post(IMAGE_ADD, image_form())

    assert response.status_code == 302, response.context["adminform"].form.errors
    image = Image.objects.get(repository="registry.example.com/team/private")
    assert sorted(image.tags.values_list("tag", "is_default")) == [("1.0", False), ("2.0", True)]
    assert image.registry_password == "s3cret-token"
    assert "s3cret-token" not in image.registry_password_encrypted
    entry = AuditEntry.objects.get(action="image.create")
    assert entry.after["registry_credentials"] is True
    assert "s3cret-token" not in str(entry.after)


def test_the_change_page_never_shows_the_password_and_blank_keeps_it(client, operator):
    client.post(IMAGE_ADD, image_form())
    image = Image.objects.get()
    url = reverse("admin:environments_image_change", args=[image.pk])

    content = client.get(url).content.decode()
    assert "s3cret-token" not in content
    assert image.registry_password_encrypted not in content

    response = client.post(url, image_form(registry_password="", description="changed"))

    assert response.status_code == 302
    image.refresh_from_db()
    assert image.description == "changed"
    assert image.registry_password == "s3cret-token"


def test_a_new_password_replaces_the_stored_one_and_remove_clears_them(client, operator):
    client.post(IMAGE_ADD, image_form())
    image = Image.objects.get()
    url = reverse("admin:environments_image_change", args=[image.pk])

    client.post(url, image_form(registry_password="n3w-token"))
    image.refresh_from_db()
    assert image.registry_password == "n3w-token"

    client.post(url, image_form(registry_password="", clear_credentials="on"))
    image.refresh_from_db()
    assert not image.has_registry_credentials
    assert image.registry_username == ""


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"tags": "Not A Tag!"}, "tags"),
        ({"tags": ""}, "tags"),
        ({"default_tag": "3.0"}, "default_tag"),
        ({"registry_password": ""}, "registry_username"),
    ],
)
def test_bad_image_input_is_a_form_error_and_saves_nothing(client, operator, overrides, field):
    response = client.post(IMAGE_ADD, image_form(**overrides))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Image.objects.exists()


def test_tags_are_edited_in_the_form_and_shown_read_only_inline(client, operator):
    client.post(IMAGE_ADD, image_form())
    image = Image.objects.get()
    url = reverse("admin:environments_image_change", args=[image.pk])

    client.post(url, image_form(tags="2.0 3.0", default_tag="3.0", registry_password=""))

    assert sorted(image.tags.values_list("tag", "is_default")) == [("2.0", False), ("3.0", True)]
    response = client.get(url)
    assert 'name="tags-0-tag"' not in response.content.decode()
    assert response.context["adminform"].form.initial["default_tag"] == "3.0"


@pytest.mark.parametrize("rows", [2, 20])
def test_the_image_changelist_query_count_does_not_grow(
    client, operator, django_assert_max_num_queries, rows
):
    for _ in range(rows):
        ImageTagFactory(image=ImageFactory())

    with django_assert_max_num_queries(8):
        response = client.get(IMAGES)

    assert response.context["cl"].result_count == rows


def test_images_are_disabled_and_enabled_through_the_service_and_never_deleted(client, operator):
    image = ImageFactory()

    client.post(IMAGES, {"action": "disable", ACTION_CHECKBOX_NAME: [image.pk]})
    image.refresh_from_db()
    assert not image.enabled
    client.post(IMAGES, {"action": "enable", ACTION_CHECKBOX_NAME: [image.pk]})
    image.refresh_from_db()
    assert image.enabled
    assert list(
        AuditEntry.objects.filter(action__startswith="image.").order_by("id").values_list("action", flat=True)
    ) == [
        "image.disable",
        "image.enable",
    ]
    assert client.get(reverse("admin:environments_image_delete", args=[image.pk])).status_code == 403


def test_saving_what_the_change_page_rendered_keeps_working_when_tags_go_away(client, operator):
    client.post(IMAGE_ADD, image_form())
    image = Image.objects.get()
    url = reverse("admin:environments_image_change", args=[image.pk])
    formset = client.get(url).context["inline_admin_formsets"][0].formset
    rendered = {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}
    for index, form in enumerate(formset.forms):
        rendered[f"{formset.prefix}-{index}-id"] = form.instance.pk
        rendered[f"{formset.prefix}-{index}-image"] = image.pk

    response = client.post(url, {**image_form(tags="3.0", default_tag="", registry_password=""), **rendered})

    assert response.status_code == 302
    assert list(image.tags.values_list("tag", "is_default")) == [("3.0", True)]


@pytest.mark.parametrize("rows", [2, 20])
def test_the_event_list_is_read_only_with_a_fixed_query_count(
    client, operator, django_assert_max_num_queries, rows
):
    for index in range(rows):
        EnvironmentEventFactory(
            environment=named(EnvironmentFactory(owner=OwnerFactory())), message=f"line {index}"
        )
    event = EnvironmentEvent.objects.first()

    with django_assert_max_num_queries(8):
        response = client.get(reverse("admin:environments_environmentevent_changelist"))

    assert response.context["cl"].result_count == rows
    assert event.environment.owner.username in response.content.decode()
    assert client.get(reverse("admin:environments_environmentevent_add")).status_code == 403
    delete = reverse("admin:environments_environmentevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403


def test_reconcile_now_says_so_when_another_sweep_is_running(client, operator):
    from django.core.cache import cache

    from infrastructure.reconciler import LOCK_KEY

    cache.add(LOCK_KEY, "the beat's sweep", timeout=60)

    response = act(client, "reconcile_now", [named(EnvironmentFactory())])

    assert texts(response) == ["Another sweep is running; this one did nothing."]
