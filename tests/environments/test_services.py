"""The environment services: validation, transitions, events, audit entries and enqueued work."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from kombu.exceptions import OperationalError as BrokerUnreachable

from coderadmin.models import AuditEntry
from environments import services, tasks
from environments.models import Environment, EnvironmentEvent
from environments.services import PodState
from environments.states import State, TransitionNotAllowed
from infrastructure.models import CvmBackend, InfrastructureSettings
from infrastructure.supervisor import contract
from tests.environments.factories import EnvironmentFactory, ImageTagFactory, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent (after commit) as (task name, environment id, generation)."""
    calls: list[tuple[str, int, int]] = []
    for name in ("build_environment", "stop_environment", "delete_environment"):
        task = getattr(tasks, name)
        monkeypatch.setattr(task, "delay", lambda pk, gen, _n=name: calls.append((_n, pk, gen)))
    return calls


@pytest.fixture
def cvm_on():
    settings = InfrastructureSettings.load()
    settings.cvm_enabled = True
    settings.cvm_backend = CvmBackend.RUNTIMECLASS
    settings.max_gpu_count = 2
    settings.save()
    return settings


@pytest.fixture
def tag():
    return ImageTagFactory(image__repository="registry.example.com/team/dev", tag="1.0")


def create(owner, image_tag, **overrides):
    values = {
        "owner": owner,
        "name": "web",
        "image": image_tag.image,
        "tag": image_tag.tag,
        "cpu_millicores": 1000,
        "memory_mib": 2048,
        "disk_gib": 10,
        "gpu_count": 0,
        "cvm": False,
    }
    values.update(overrides)
    return services.environment_create(**values)


def test_create_stores_names_event_audit_and_enqueues_after_commit(
    tag, sent, django_capture_on_commit_callbacks
):
    owner = make_user("alice")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        env = create(owner, tag)
    assert sent == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    assert sent == [("build_environment", env.pk, 1)]
    env.refresh_from_db()
    assert (env.state, env.generation, env.cvm_backend) == (State.CREATING, 1, "")
    assert (env.namespace, env.pod_name, env.pvc_name) == (
        "coderadmin-environments",
        "alice-web",
        "alice-web-data",
    )
    assert env.events.get().message == "Environment created from registry.example.com/team/dev:1.0."
    entry = AuditEntry.objects.get(action="environment.create")
    assert (entry.actor, entry.target_id, entry.after["cpu_millicores"]) == (owner, str(env.pk), 1000)


def test_create_copies_the_cvm_backend(tag, cvm_on, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        env = create(make_user(), tag, cvm=True)
    assert env.cvm_backend == CvmBackend.RUNTIMECLASS


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"cvm": True}, "cvm", "Container-based virtual machines are disabled on this installation."),
        ({"cpu_millicores": 100}, "cpu_millicores", "Choose between 250 and 8000 mCPU."),
        ({"memory_mib": 10**6}, "memory_mib", "Choose between 512 and 16384 MiB."),
        ({"disk_gib": 0}, "disk_gib", "Choose between 1 and 100 GiB."),
        ({"disk_gib": "10"}, "disk_gib", "Enter a whole number."),
        ({"gpu_count": 1}, "gpu_count", "Choose between 0 and 0 GPUs."),
        ({"tag": "9.9"}, "tag", "The image registry.example.com/team/dev has no tag “9.9”."),
        ({"name": "Web!"}, "name", None),
        ({"name": "new"}, "name", "“new” is reserved; choose another name."),
        ({"name": "é" * 40}, "name", "A name is at most 32 characters."),
    ],
)
def test_create_refuses_bad_input_and_changes_nothing(tag, sent, overrides, field, message):
    with pytest.raises(ValidationError) as caught:
        create(make_user(), tag, **overrides)
    assert field in caught.value.message_dict
    if message:
        assert caught.value.message_dict[field] == [message]
    assert not Environment.objects.exists()
    assert sent == []


def test_gpus_are_refused_for_cvms_whatever_is_posted(tag, cvm_on, sent):
    with pytest.raises(ValidationError) as caught:
        create(make_user(), tag, cvm=True, gpu_count=1)
    assert caught.value.message_dict["gpu_count"] == [
        "GPUs are not supported in container-based virtual machines."
    ]


@pytest.mark.parametrize("flag", ["enabled", "deprecated"])
def test_disabled_or_deprecated_images_are_refused_for_new_environments(tag, sent, flag):
    setattr(tag.image, flag, flag == "deprecated")
    tag.image.save()
    with pytest.raises(ValidationError) as caught:
        create(make_user(), tag)
    assert caught.value.message_dict["image"] == [
        "The image registry.example.com/team/dev is not available for new environments."
    ]


def test_a_double_submitted_create_makes_one_environment(tag, sent, django_capture_on_commit_callbacks):
    owner = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        create(owner, tag)
    with pytest.raises(ValidationError) as caught:
        create(owner, tag)
    assert caught.value.message_dict["name"] == ["You already have an environment named web."]
    assert Environment.objects.count() == 1
    assert len(sent) == 1


def test_the_integrity_error_of_a_racing_create_becomes_the_same_message(tag, sent, monkeypatch):
    owner = make_user()
    create(owner, tag)
    # The other request's row appears between the check and the insert.
    monkeypatch.setattr(
        services.Environment.objects, "filter", _filter_hiding_rows(services.Environment.objects)
    )
    with pytest.raises(ValidationError) as caught:
        create(owner, tag)
    assert caught.value.message_dict["name"] == ["You already have an environment named web."]
    assert Environment.objects.count() == 1


def _filter_hiding_rows(manager):
    original = manager.filter

    def hiding(*args, **kwargs):
        return original(*args, **kwargs).none() if "owner" in kwargs else original(*args, **kwargs)

    return hiding


def test_per_member_limit(tag, sent):
    settings = InfrastructureSettings.load()
    settings.max_environments_per_member = 1
    settings.save()
    owner = make_user()
    create(owner, tag)
    with pytest.raises(ValidationError, match="You have reached the limit of 1 environments"):
        create(owner, tag, name="second")
    create(make_user("bob"), tag)  # another member has their own allowance


def make_env(state: State, **extra) -> Environment:
    tag = ImageTagFactory()
    env = EnvironmentFactory(image=tag.image, tag=tag.tag, state=state, generation=3, **extra)
    env.assign_kubernetes_names(InfrastructureSettings.load())
    env.save()
    return env


@pytest.mark.parametrize(
    ("action", "from_state", "to_state", "task"),
    [
        (services.environment_stop, State.RUNNING, State.TURNING_OFF, "stop_environment"),
        (services.environment_stop, State.BUILDING, State.TURNING_OFF, "stop_environment"),
        (services.environment_start, State.OFF, State.BUILDING, "build_environment"),
        (services.environment_rebuild, State.ERROR, State.BUILDING, "build_environment"),
        (services.environment_rebuild, State.RUNNING, State.BUILDING, "build_environment"),
        (services.environment_cancel, State.BUILDING, State.OFF, "stop_environment"),
        (services.environment_delete, State.ERROR, State.DELETING, "delete_environment"),
    ],
)
def test_actions_move_bump_generation_audit_and_enqueue(
    action, from_state, to_state, task, sent, django_capture_on_commit_callbacks
):
    env = make_env(from_state, status_reason="old reason")
    actor = make_user("operator")
    with django_capture_on_commit_callbacks(execute=True):
        action(env, actor=actor)
    env.refresh_from_db()
    assert env.state == to_state
    assert env.generation == 4
    assert sent == [(task, env.pk, 4)]
    verb = action.__name__.removeprefix("environment_")
    assert AuditEntry.objects.filter(
        action=f"environment.{verb}", actor=actor, target_id=str(env.pk)
    ).exists()
    assert env.events.filter(source=EnvironmentEvent.Source.DASHBOARD).exists()


@pytest.mark.parametrize(
    ("action", "state", "message"),
    [
        (services.environment_stop, State.OFF, "Environment is Off; it cannot be stopped."),
        (services.environment_start, State.RUNNING, "Environment is Running; it cannot be started."),
        (services.environment_cancel, State.RUNNING, "Environment is Running; there is no build to cancel."),
        (
            services.environment_delete,
            State.DELETING,
            "Environment is Deleting; nothing else can be done with it.",
        ),
        (services.environment_rebuild, State.BUILDING, "Environment is Building; it cannot be rebuilt."),
    ],
)
def test_actions_that_do_not_fit_the_state_are_refused(action, state, message, sent):
    env = make_env(state)
    with pytest.raises(TransitionNotAllowed, match=message):
        action(env, actor=make_user())
    env.refresh_from_db()
    assert (env.state, env.generation) == (state, 3)
    assert sent == []
    assert not AuditEntry.objects.exists()


def test_starting_a_cvm_is_refused_while_cvms_are_disabled(sent, django_capture_on_commit_callbacks):
    env = make_env(State.OFF, cvm=True)
    with pytest.raises(TransitionNotAllowed, match="Container-based virtual machines are disabled"):
        services.environment_start(env, actor=make_user())
    env.refresh_from_db()
    assert (env.state, env.generation, sent) == (State.OFF, 3, [])


def test_starting_a_cvm_works_again_once_cvms_are_enabled(cvm_on, sent, django_capture_on_commit_callbacks):
    env = make_env(State.OFF, cvm=True)
    with django_capture_on_commit_callbacks(execute=True):
        services.environment_start(env, actor=make_user())
    env.refresh_from_db()
    assert env.state == State.BUILDING
    assert sent == [("build_environment", env.pk, 4)]


def test_a_broker_outage_after_commit_keeps_the_saved_state(
    tag, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def broker_down(*args):
        raise BrokerUnreachable("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(tasks.build_environment, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        env = create(make_user(), tag)
    env.refresh_from_db()
    assert env.state == State.CREATING
    assert "left to the reconciler" in caplog.text


def test_rebuild_with_new_tag_and_resources(sent):
    env = make_env(State.OFF)
    ImageTagFactory(image=env.image, tag="2.0", is_default=False)
    services.environment_rebuild(env, actor=make_user(), tag="2.0", cpu_millicores=500, disk_gib=30)
    env.refresh_from_db()
    assert (env.tag, env.cpu_millicores, env.disk_gib, env.memory_mib) == ("2.0", 500, 30, 4096)
    assert env.build_started_at is not None


def test_rebuild_refuses_bad_values_and_a_shrinking_disk(sent):
    env = make_env(State.OFF)
    with pytest.raises(ValidationError) as caught:
        services.environment_rebuild(env, actor=make_user(), tag="nope", disk_gib=5)
    assert set(caught.value.message_dict) == {"tag", "disk_gib"}
    assert caught.value.message_dict["disk_gib"] == ["A volume cannot shrink; keep at least 20 GiB."]
    env.refresh_from_db()
    assert (env.state, env.tag) == (State.OFF, "1.0")


def test_mark_error_records_the_reason(sent):
    env = make_env(State.RUNNING)
    services.environment_mark_error(env, reason="disk full", actor=make_user())
    env.refresh_from_db()
    assert (env.state, env.status_reason) == (State.ERROR, "disk full")
    assert env.events.get(type="error").message == "disk full"


def test_mark_error_with_a_stale_generation_changes_nothing(sent):
    env = make_env(State.BUILDING)
    assert services.environment_mark_error(env.pk, reason="late", generation=2) is None
    env.refresh_from_db()
    assert env.state == State.BUILDING


@pytest.mark.parametrize(
    ("start", "pod", "end", "reason"),
    [
        (State.BUILDING, PodState.RUNNING, State.RUNNING, ""),
        (State.UNKNOWN, PodState.RUNNING, State.RUNNING, ""),
        # The pod was Ready before the build task committed "pod created": not lost.
        (State.CREATING, PodState.RUNNING, State.RUNNING, ""),
        (State.BUILDING, PodState.FAILED, State.ERROR, "image x could not be pulled: boom"),
        (
            State.RUNNING,
            PodState.GONE,
            State.ERROR,
            "The pod disappeared: something outside coderadmin deleted it.",
        ),
        (State.TURNING_OFF, PodState.GONE, State.OFF, ""),
        (State.RUNNING, PodState.UNKNOWN, State.UNKNOWN, "lost"),
        (State.UNKNOWN, PodState.PENDING, State.BUILDING, ""),
        (State.OFF, PodState.FAILED, State.OFF, ""),  # a pod failing while stopping is no error
        (State.BUILDING, PodState.PENDING, State.BUILDING, ""),
    ],
)
def test_apply_pod_state(start, pod, end, reason, sent):
    env = make_env(start)
    services.environment_apply_pod_state(env.pk, generation=3, state=pod, reason=reason or "", node_name="n1")
    env.refresh_from_db()
    assert env.state == end
    if end == State.ERROR:
        assert env.status_reason == reason
    if end == State.RUNNING:
        assert (env.node_name, env.running_at is not None) == ("n1", True)


def test_running_reported_before_the_build_task_commits_survives_its_late_mark_built(sent):
    env = make_env(State.CREATING)
    services.environment_apply_pod_state(env.pk, generation=3, state=PodState.RUNNING, node_name="n1")
    services.environment_mark_built(env.pk, generation=3)
    env.refresh_from_db()
    assert env.state == State.RUNNING
    assert env.build_started_at is not None


def test_pod_reports_of_an_older_build_are_ignored(sent):
    env = make_env(State.BUILDING)
    services.environment_apply_pod_state(env.pk, generation=2, state=PodState.GONE)
    env.refresh_from_db()
    assert env.state == State.BUILDING


def test_pod_gone_while_deleting_enqueues_the_delete_again(sent, django_capture_on_commit_callbacks):
    env = make_env(State.DELETING)
    with django_capture_on_commit_callbacks(execute=True):
        services.environment_apply_pod_state(env.pk, generation=3, state=PodState.GONE)
    assert sent == [("delete_environment", env.pk, 3)]


def test_finish_delete_removes_the_row_only_when_current():
    env = make_env(State.DELETING)
    assert services.environment_finish_delete(env.pk, generation=2) is False
    assert services.environment_finish_delete(env.pk, generation=3) is True
    assert not Environment.objects.filter(pk=env.pk).exists()
    assert AuditEntry.objects.filter(action="environment.deleted", target_id=str(env.pk)).exists()


def test_mark_built_moves_creating_to_building_once():
    env = make_env(State.CREATING)
    services.environment_mark_built(env.pk, generation=3)
    services.environment_mark_built(env.pk, generation=3)
    env.refresh_from_db()
    assert env.state == State.BUILDING
    assert env.events.filter(message="Pod created; building.").count() == 1


def test_build_log_lines_are_stored_once_with_the_entrypoint():
    env = make_env(State.BUILDING)
    lines = [
        contract.parse_log_line(contract.format_log_line("info", "pulling image")),
        contract.parse_log_line(contract.format_log_line("error", "retrying pull")),
        contract.parse_log_line(contract.format_log_line("done", contract.entrypoint_line("/sbin/init"))),
    ]
    assert services.environment_record_build_log(env.pk, generation=3, lines=lines) == 3
    assert services.environment_record_build_log(env.pk, generation=3, lines=lines) == 0
    env.refresh_from_db()
    assert env.entrypoint == "/sbin/init"
    stored = list(env.events.filter(source="supervisor").values_list("type", "message"))
    assert stored == [
        ("info", "pulling image"),
        ("error", "retrying pull"),
        ("info", "entrypoint: /sbin/init"),
    ]


def test_cluster_events_are_stored_once_per_build():
    env = make_env(State.BUILDING)
    for _ in range(2):
        services.environment_record_cluster_event(env.pk, generation=3, type_="warning", message="BackOff: x")
    services.environment_record_cluster_event(env.pk, generation=2, type_="info", message="old build")
    assert list(env.events.values_list("source", "type", "message")) == [("cluster", "warning", "BackOff: x")]


def test_an_error_removes_the_broken_pod_but_keeps_the_reason(sent, django_capture_on_commit_callbacks):
    env = make_env(State.BUILDING)
    with django_capture_on_commit_callbacks(execute=True):
        services.environment_apply_pod_state(
            env.pk, generation=3, state=PodState.FAILED, reason="no such host"
        )
    assert sent == [("stop_environment", env.pk, 3)]
    env.refresh_from_db()
    assert (env.state, env.status_reason, env.generation) == (State.ERROR, "no such host", 3)


def test_mark_unreachable_moves_only_building_and_running(sent):
    envs = {state: make_env(state) for state in (State.BUILDING, State.RUNNING, State.OFF, State.TURNING_OFF)}
    moved = services.environment_mark_unreachable(
        "coderadmin-environments", reason="the cluster cannot be reached"
    )
    assert moved == 2
    states = {state: Environment.objects.get(pk=env.pk).state for state, env in envs.items()}
    assert states == {
        State.BUILDING: State.UNKNOWN,
        State.RUNNING: State.UNKNOWN,
        State.OFF: State.OFF,
        State.TURNING_OFF: State.TURNING_OFF,
    }
