"""Writes on environments: the only code that changes their rows.

Every user action runs in one transaction with the environment row locked (``select_for_update``),
asks ``states.check_transition`` whether it fits, records an event and an audit entry, and enqueues
the cluster work with ``transaction.on_commit`` (ids only). Each action that enqueues work bumps
``generation``: a task carrying an older generation finds it stale and does nothing, so a Stop
pressed during a build makes the pending build task a no-op.

The watcher reports what the cluster did through ``environment_apply_pod_state``,
``environment_record_cluster_event``, ``environment_record_build_log`` and
``environment_mark_unreachable``; the provisioner through
``environment_mark_built``, ``environment_mark_error`` and ``environment_finish_delete``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from coderadmin.audit import audit_record
from environments.models import Environment, EnvironmentEvent, Image, ImageTag, validate_environment_name
from environments.states import Action, State, TransitionNotAllowed, check_transition
from infrastructure.models import InfrastructureSettings
from infrastructure.supervisor import contract

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = [
    "PodState",
    "TransitionNotAllowed",
    "environment_apply_pod_state",
    "environment_cancel",
    "environment_create",
    "environment_delete",
    "environment_finish_delete",
    "environment_mark_built",
    "environment_mark_error",
    "environment_mark_unreachable",
    "environment_rebuild",
    "environment_record_build_log",
    "environment_record_cluster_event",
    "environment_start",
    "environment_stop",
]

Event = EnvironmentEvent
MAX_REASON_LENGTH = 2000


class PodState(enum.Enum):
    """What the watcher saw of an environment's pod."""

    PENDING = "pending"  # exists, not ready yet (scheduling, pulling, starting)
    RUNNING = "running"  # Running and Ready (CVM: the supervisor's ready marker)
    FAILED = "failed"  # will not come up: reason says why
    GONE = "gone"  # deleted
    UNKNOWN = "unknown"  # phase Unknown: the node stopped reporting


def _snapshot(env: Environment) -> dict[str, Any]:
    return {
        "state": env.state,
        "image": env.image_reference,
        "cpu_millicores": env.cpu_millicores,
        "memory_mib": env.memory_mib,
        "disk_gib": env.disk_gib,
        "gpu_count": env.gpu_count,
        "cvm": env.cvm,
    }


def _locked(env_or_id: Environment | int) -> Environment:
    pk = env_or_id.pk if isinstance(env_or_id, Environment) else env_or_id
    return Environment.objects.select_for_update(of=("self",)).select_related("owner", "image").get(pk=pk)


def _event(
    env: Environment, message: str, type_: str = Event.Type.INFO, source=Event.Source.DASHBOARD
) -> None:
    Event.objects.create(environment=env, type=type_, source=source, message=message[:MAX_REASON_LENGTH])


def _enqueue(task_name: str, env: Environment) -> None:
    """Send the task once the transaction commits (ids only), so the worker sees the new row.

    The row is already committed when the broker is asked, so a broker outage must not turn the
    member's request into an error page: the environment stays in its transitional state and the
    reconciler (``recovery.requeue_stuck``) enqueues the work once the broker answers again.
    """
    from environments import tasks

    task = getattr(tasks, task_name)
    pk, generation = env.pk, env.generation

    def send() -> None:
        try:
            task.delay(pk, generation)
        except BrokerUnreachable:
            log.warning("broker unreachable: %s for environment %s left to the reconciler", task_name, pk)

    transaction.on_commit(send)


def _move(env: Environment, action: Action) -> State:
    new = check_transition(env.state, action)
    env.state = new
    return new


# --------------------------------------------------------------------------- validation


def _validate_request(
    *,
    image: Image,
    tag: str,
    cpu_millicores: Any,
    memory_mib: Any,
    disk_gib: Any,
    gpu_count: Any,
    cvm: bool,
    infrastructure: InfrastructureSettings,
    new: bool,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if new and (not image.enabled or image.deprecated):
        errors["image"] = f"The image {image.repository} is not available for new environments."
    elif not image.enabled:
        errors["image"] = f"The image {image.repository} is disabled."
    if not ImageTag.objects.filter(image=image, tag=tag).exists():
        errors["tag"] = f"The image {image.repository} has no tag “{tag}”."
    if cvm and not infrastructure.cvm_enabled:
        errors["cvm"] = "Container-based virtual machines are disabled on this installation."
    limits = (
        (
            "cpu_millicores",
            cpu_millicores,
            image.min_cpu_millicores,
            infrastructure.max_cpu_millicores,
            "mCPU",
        ),
        ("memory_mib", memory_mib, image.min_memory_mib, infrastructure.max_memory_mib, "MiB"),
        ("disk_gib", disk_gib, image.min_disk_gib, infrastructure.max_disk_gib, "GiB"),
        ("gpu_count", gpu_count, 0, infrastructure.max_gpu_count, "GPUs"),
    )
    for field, value, minimum, maximum, unit in limits:
        if isinstance(value, bool) or not isinstance(value, int):
            errors[field] = "Enter a whole number."
        elif not minimum <= value <= maximum:
            errors[field] = f"Choose between {minimum} and {maximum} {unit}."
    if cvm and gpu_count:
        errors["gpu_count"] = "GPUs are not supported in container-based virtual machines."
    return errors


# --------------------------------------------------------------------------- user actions


def environment_create(
    *,
    owner: Any,
    name: str,
    image: Image,
    tag: str,
    cpu_millicores: int,
    memory_mib: int,
    disk_gib: int,
    gpu_count: int,
    cvm: bool,
    request: HttpRequest | None = None,
) -> Environment:
    """Create the row (Creating) and enqueue its first build. A double submit makes one environment."""
    infrastructure = InfrastructureSettings.load()
    errors = _validate_request(
        image=image,
        tag=tag,
        cpu_millicores=cpu_millicores,
        memory_mib=memory_mib,
        disk_gib=disk_gib,
        gpu_count=gpu_count,
        cvm=cvm,
        infrastructure=infrastructure,
        new=True,
    )
    try:
        validate_environment_name(name)
    except ValidationError as exc:
        errors["name"] = exc.messages[0]
    if errors:
        raise ValidationError(errors)
    duplicate = ValidationError({"name": f"You already have an environment named {name}."})
    with transaction.atomic():
        # Lock the owner row: concurrent creates of one member are serialised, so the limit holds.
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
        mine = Environment.objects.filter(owner=owner)
        if mine.filter(name=name).exists():
            raise duplicate
        limit = infrastructure.max_environments_per_member
        if mine.count() >= limit:
            raise ValidationError(f"You have reached the limit of {limit} environments; delete one first.")
        env = Environment(
            owner=owner,
            name=name,
            image=image,
            tag=tag,
            cpu_millicores=cpu_millicores,
            memory_mib=memory_mib,
            disk_gib=disk_gib,
            gpu_count=gpu_count,
            cvm=cvm,
            cvm_backend=infrastructure.cvm_backend if cvm else "",
            state=check_transition(None, Action.CREATE),
            generation=1,
        )
        env.assign_kubernetes_names(infrastructure)
        try:
            with transaction.atomic():
                env.save()
        except IntegrityError:
            raise duplicate from None
        _event(env, f"Environment created from {env.image_reference}.")
        audit_record("environment.create", actor=owner, target=env, request=request, after=_snapshot(env))
        _enqueue("build_environment", env)
    return env


def _begin_teardown(
    env: Environment,
    action: Action,
    message: str,
    actor: Any,
    request,
    *,
    task: str,
    reason: str | None,
    event_type: str = Event.Type.INFO,
) -> Environment:
    """Stop, cancel and delete: move the locked row, bump ``generation`` (so a pending build task
    turns stale), record the event and audit entry, and enqueue the cluster-side work.
    ``reason`` replaces the status reason; None keeps it."""
    before = _snapshot(env)
    _move(env, action)
    env.generation += 1
    fields = ["state", "generation", "updated_at"]
    if reason is not None:
        env.status_reason = reason
        fields.append("status_reason")
    env.save(update_fields=fields)
    _event(env, message, event_type)
    audit_record(
        f"environment.{action.value}",
        actor=actor,
        target=env,
        request=request,
        before=before,
        after=_snapshot(env),
    )
    _enqueue(task, env)
    return env


def environment_stop(env: Environment, *, actor: Any, request: HttpRequest | None = None) -> Environment:
    """Turning off: the pod is deleted, the volume kept; Off once the pod is gone."""
    with transaction.atomic():
        env = _locked(env)
        return _begin_teardown(
            env, Action.STOP, "Stop requested.", actor, request, task="stop_environment", reason=""
        )


def _begin_build(
    env: Environment, action: Action, message: str, actor: Any, request, before: dict
) -> Environment:
    _move(env, action)
    env.generation += 1
    env.status_reason = ""
    env.entrypoint = ""
    env.node_name = ""
    env.running_at = None
    env.build_started_at = timezone.now()
    if env.cvm:
        env.cvm_backend = InfrastructureSettings.load().cvm_backend
    env.save()
    _event(env, message)
    audit_record(
        f"environment.{action.value}",
        actor=actor,
        target=env,
        request=request,
        before=before,
        after=_snapshot(env),
    )
    _enqueue("build_environment", env)
    return env


def environment_start(env: Environment, *, actor: Any, request: HttpRequest | None = None) -> Environment:
    """Off → Building: the pod is created again on the kept volume."""
    with transaction.atomic():
        env = _locked(env)
        if env.cvm and not InfrastructureSettings.load().cvm_enabled:
            raise TransitionNotAllowed(
                env.state,
                Action.START,
                "Container-based virtual machines are disabled on this installation; this environment "
                "can start again once a site admin turns them back on.",
            )
        return _begin_build(env, Action.START, "Start requested.", actor, request, _snapshot(env))


def environment_rebuild(
    env: Environment,
    *,
    actor: Any,
    request: HttpRequest | None = None,
    tag: str | None = None,
    cpu_millicores: int | None = None,
    memory_mib: int | None = None,
    disk_gib: int | None = None,
) -> Environment:
    """Running/Off/Error → Building, optionally with another tag or resources; only the volume stays."""
    with transaction.atomic():
        env = _locked(env)
        check_transition(env.state, Action.REBUILD)
        before = _snapshot(env)
        changes = {
            "tag": env.tag if tag is None else tag,
            "cpu_millicores": env.cpu_millicores if cpu_millicores is None else cpu_millicores,
            "memory_mib": env.memory_mib if memory_mib is None else memory_mib,
            "disk_gib": env.disk_gib if disk_gib is None else disk_gib,
        }
        errors = _validate_request(
            image=env.image,
            gpu_count=env.gpu_count,
            cvm=env.cvm,
            infrastructure=InfrastructureSettings.load(),
            new=False,
            **changes,
        )
        if changes["disk_gib"] < env.disk_gib:
            errors["disk_gib"] = f"A volume cannot shrink; keep at least {env.disk_gib} GiB."
        if errors:
            raise ValidationError(errors)
        for field, value in changes.items():
            setattr(env, field, value)
        return _begin_build(
            env, Action.REBUILD, f"Rebuild requested ({env.image_reference}).", actor, request, before
        )


def environment_cancel(env: Environment, *, actor: Any, request: HttpRequest | None = None) -> Environment:
    """Creating/Building → Off at once; the half-built pod is removed in the background."""
    with transaction.atomic():
        env = _locked(env)
        return _begin_teardown(
            env,
            Action.CANCEL,
            "Build cancelled.",
            actor,
            request,
            task="stop_environment",
            reason="The build was cancelled.",
            event_type=Event.Type.WARNING,
        )


def environment_delete(env: Environment, *, actor: Any, request: HttpRequest | None = None) -> Environment:
    """Deleting: pod, secrets, policy and claim go, then the row."""
    with transaction.atomic():
        env = _locked(env)
        return _begin_teardown(
            env,
            Action.DELETE,
            "Delete requested.",
            actor,
            request,
            task="delete_environment",
            reason=None,
            event_type=Event.Type.WARNING,
        )


def environment_mark_error(
    env: Environment | int,
    *,
    reason: str,
    actor: Any = None,
    request: HttpRequest | None = None,
    generation: int | None = None,
) -> Environment | None:
    """Error with a human reason; the pod (if any) is removed, the volume kept. With ``generation``
    (cluster callers) a stale report changes nothing; None when it was stale or the row is gone."""
    with transaction.atomic():
        try:
            env = _locked(env)
        except Environment.DoesNotExist:
            return None
        if generation is not None and generation != env.generation:
            return None
        before = _snapshot(env)
        _move(env, Action.FAIL)
        env.status_reason = reason[:MAX_REASON_LENGTH]
        env.save(update_fields=["state", "status_reason", "updated_at"])
        _event(env, reason, Event.Type.ERROR)
        _enqueue("stop_environment", env)  # the reason is kept; the pod (if any) goes
        audit_record(
            "environment.error",
            actor=actor,
            target=env,
            request=request,
            before=before,
            after=_snapshot(env),
            message=reason[:500],
        )
    return env


# --------------------------------------------------------------------------- provisioner reports


def environment_mark_built(environment_id: int, *, generation: int) -> Environment | None:
    """The provisioner created the pod: Creating (or Unknown) → Building; None when stale."""
    with transaction.atomic():
        try:
            env = _locked(environment_id)
        except Environment.DoesNotExist:
            return None
        if generation != env.generation:
            return None
        if env.state in (State.CREATING, State.UNKNOWN):
            _move(env, Action.BUILD)
            env.build_started_at = env.build_started_at or timezone.now()
            env.save(update_fields=["state", "build_started_at", "updated_at"])
            _event(env, "Pod created; building.")
    return env


def environment_finish_delete(environment_id: int, *, generation: int) -> bool:
    """Remove the row once its cluster objects are gone (audit entries keep its name)."""
    with transaction.atomic():
        env = Environment.objects.select_for_update().filter(pk=environment_id).first()
        if env is None or env.state != State.DELETING or env.generation != generation:
            return False
        audit_record("environment.deleted", target=env, message=f"{env.owner_id}/{env.name} removed")
        env.delete()
    return True


# --------------------------------------------------------------------------- watcher reports


def environment_apply_pod_state(
    environment_id: int,
    *,
    generation: int | None,
    state: PodState,
    reason: str = "",
    node_name: str = "",
) -> Environment | None:
    """Fold what the watcher saw of the pod into the environment's state.

    ``generation`` is the one the pod was built for (its annotation); a pod of an older build
    (being replaced by a rebuild) changes nothing.
    """
    with transaction.atomic():
        try:
            env = _locked(environment_id)
        except Environment.DoesNotExist:
            return None
        current = State(env.state)
        if state is PodState.GONE and current in (State.TURNING_OFF, State.DELETING):
            _pod_gone(env, current)  # whichever build the pod was of, it is gone
            return env
        if generation is not None and generation != env.generation:
            return None
        if state is PodState.RUNNING and current is State.CREATING:
            # The pod came up before the build task committed ``environment_mark_built``; the
            # watcher reports each pod state once, so this report must not be lost.
            _move(env, Action.BUILD)
            env.build_started_at = env.build_started_at or timezone.now()
            current = State.BUILDING
        if state is PodState.RUNNING and current in (State.BUILDING, State.UNKNOWN):
            _move(env, Action.MARK_RUNNING)
            env.running_at = timezone.now()
            env.node_name = node_name or env.node_name
            env.status_reason = ""
            env.save(
                update_fields=[
                    "state",
                    "running_at",
                    "node_name",
                    "status_reason",
                    "build_started_at",
                    "updated_at",
                ]
            )
            _event(
                env,
                f"Environment is running on {env.node_name}." if env.node_name else "Environment is running.",
            )
        elif state is PodState.PENDING and current is State.UNKNOWN:
            _move(env, Action.BUILD)
            env.save(update_fields=["state", "updated_at"])
            _event(env, "The cluster reports the pod again; building.", source=Event.Source.CLUSTER)
        elif state is PodState.FAILED and current in (
            State.CREATING,
            State.BUILDING,
            State.RUNNING,
            State.UNKNOWN,
        ):
            _fail(env, reason)
        elif state is PodState.UNKNOWN and current in (State.BUILDING, State.RUNNING):
            _move(env, Action.LOSE)
            env.status_reason = reason or "The node running the pod stopped reporting."
            env.save(update_fields=["state", "status_reason", "updated_at"])
            _event(env, env.status_reason, Event.Type.WARNING, Event.Source.CLUSTER)
        elif state is PodState.GONE:
            _pod_gone(env, current)
    return env


def environment_mark_unreachable(namespace: str, *, reason: str) -> int:
    """Building/Running → Unknown for every environment of the namespace: the cluster cannot be
    reached, so nothing is known. The watcher's next full list settles each one again."""
    moved = 0
    ids = Environment.objects.filter(namespace=namespace, state__in=[State.BUILDING, State.RUNNING])
    for pk in ids.values_list("pk", flat=True):
        with transaction.atomic():
            env = _locked(pk)
            if env.state not in (State.BUILDING, State.RUNNING):
                continue
            _move(env, Action.LOSE)
            env.status_reason = reason[:MAX_REASON_LENGTH]
            env.save(update_fields=["state", "status_reason", "updated_at"])
            _event(env, reason, Event.Type.WARNING, Event.Source.CLUSTER)
            moved += 1
    return moved


def _fail(env: Environment, reason: str) -> None:
    before = _snapshot(env)
    _move(env, Action.FAIL)
    env.status_reason = reason[:MAX_REASON_LENGTH]
    env.save(update_fields=["state", "status_reason", "updated_at"])
    _event(env, reason, Event.Type.ERROR, Event.Source.CLUSTER)
    audit_record("environment.error", target=env, before=before, after=_snapshot(env), message=reason[:500])
    _enqueue("stop_environment", env)  # a broken pod holds quota and the volume: remove it


def _pod_gone(env: Environment, current: State) -> None:
    if current is State.TURNING_OFF:
        _move(env, Action.MARK_OFF)
        env.node_name = ""
        env.save(update_fields=["state", "node_name", "updated_at"])
        _event(env, "Environment is off.")
    elif current is State.DELETING:
        _enqueue("delete_environment", env)
    elif current in (State.BUILDING, State.RUNNING, State.UNKNOWN):
        _fail(env, "The pod disappeared: something outside coderadmin deleted it.")


def environment_record_cluster_event(
    environment_id: int, *, generation: int | None, type_: str, message: str
) -> None:
    """Store a Kubernetes event about the pod as a build-log line (source: cluster event)."""
    env = Environment.objects.filter(pk=environment_id).only("pk", "generation", "build_started_at").first()
    if env is None or (generation is not None and generation != env.generation):
        return
    message = message[:MAX_REASON_LENGTH]
    repeated = Event.objects.filter(environment=env, source=Event.Source.CLUSTER, message=message)
    if env.build_started_at is not None:
        repeated = repeated.filter(time__gte=env.build_started_at)
    if not repeated.exists():  # a re-listed event, or the kubelet repeating itself
        _event(env, message, type_, Event.Source.CLUSTER)


def environment_record_build_log(
    environment_id: int, *, generation: int | None, lines: Iterable[contract.LogLine]
) -> int:
    """Store the supervisor's build-log lines (skipping ones already stored) and the entrypoint it
    chose. Returns the number of lines stored."""
    with transaction.atomic():
        env = Environment.objects.select_for_update().filter(pk=environment_id).first()
        if env is None or (generation is not None and generation != env.generation):
            return 0
        lines = list(lines)
        if not lines:
            return 0
        stored = set(
            Event.objects.filter(
                environment=env, source=Event.Source.SUPERVISOR, time__gte=min(line.time for line in lines)
            ).values_list("time", "message")
        )
        fresh = []
        entrypoint = None
        for line in lines:
            if (line.time, line.output[:MAX_REASON_LENGTH]) in stored:
                continue  # stored by an earlier follow of the same log
            stored.add((line.time, line.output[:MAX_REASON_LENGTH]))
            chosen = contract.parse_entrypoint(line.output)
            if chosen in Environment.Entrypoint.values:
                entrypoint = chosen
            type_ = Event.Type.ERROR if line.type == contract.LOG_ERROR else Event.Type.INFO
            fresh.append(
                Event(
                    environment=env,
                    time=line.time,
                    type=type_,
                    source=Event.Source.SUPERVISOR,
                    message=line.output[:MAX_REASON_LENGTH],
                )
            )
        Event.objects.bulk_create(fresh)
        if entrypoint and entrypoint != env.entrypoint:
            env.entrypoint = entrypoint
            env.save(update_fields=["entrypoint", "updated_at"])
    return len(fresh)
