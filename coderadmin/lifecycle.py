"""Data lifecycle: retention of old events and audit entries, and what happens to a user's
environments when the account is deactivated or deleted.

Environments are always changed through ``environments.services``, so the state machine, the
cluster clean-up and the audit entries are the same as when the owner clicks the buttons.

Deleting a user takes two steps because the cluster objects must go first: ``user_delete``
deactivates the account and asks for the deletion of each environment (recording
``user.delete_requested``); ``finish_user_deletions`` removes the account once its last
environment row is gone. It runs when an environment row is deleted and with the daily pruning
task, so a crashed worker delays it by a day at most. Reactivating the account cancels it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.http import HttpRequest
from django.utils import timezone

from coderadmin.audit import audit_record
from coderadmin.models import AuditEntry
from coderadmin.services import _require_manage

logger = logging.getLogger(__name__)

PRUNE_TASK = "coderadmin.prune"
# Rows removed per statement: keeps each transaction (and its locks) short on big tables.
PRUNE_BATCH = 5000
DELETE_REQUESTED = "user.delete_requested"
USER_TARGET = "coderadmin.user"


# --------------------------------------------------------------------------- retention


def _delete_in_batches(queryset: models.QuerySet) -> int:
    removed = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:PRUNE_BATCH])
        if not ids:
            return removed
        # A plain QuerySet: AuditEntry's own manager refuses deletion to the rest of the product.
        removed += models.QuerySet(queryset.model).filter(pk__in=ids).delete()[0]


def prune(now: Any = None) -> dict[str, int]:
    """Delete environment events and audit entries older than their retention (0 keeps them)."""
    from environments.models import EnvironmentEvent

    now = now or timezone.now()
    removed = {"events": 0, "audit_entries": 0}
    if settings.EVENT_RETENTION_DAYS > 0:
        cutoff = now - timedelta(days=settings.EVENT_RETENTION_DAYS)
        removed["events"] = _delete_in_batches(EnvironmentEvent.objects.filter(time__lt=cutoff))
    if settings.AUDIT_RETENTION_DAYS > 0:
        cutoff = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
        removed["audit_entries"] = _delete_in_batches(AuditEntry.objects.filter(created_at__lt=cutoff))
    if any(removed.values()):
        audit_record(
            "data.prune",
            target="retention",
            after=removed,
            message=f"events older than {settings.EVENT_RETENTION_DAYS} days, "
            f"audit entries older than {settings.AUDIT_RETENTION_DAYS} days",
        )
    return removed


@shared_task(name=PRUNE_TASK, ignore_result=True)
def prune_task() -> None:
    """Daily (Celery beat): retention, then any user deletion a lost signal left unfinished."""
    removed = prune()
    finished = finish_user_deletions()
    logger.info("pruned %s; finished %d user deletions", removed, finished)


# --------------------------------------------------------------------------- users


def stop_environments(*, actor: Any, user: Any, request: HttpRequest | None = None) -> int:
    """Stop (or cancel the build of) each of the user's environments that is on. Returns how many."""
    from environments import services as environment_services
    from environments.models import Environment
    from environments.states import State, TransitionNotAllowed

    stoppable = {State.RUNNING, State.BUILDING, State.UNKNOWN}
    stopped = 0
    for env in Environment.objects.filter(owner=user, state__in=[*stoppable, State.CREATING]):
        try:
            if env.state in stoppable:
                environment_services.environment_stop(env, actor=actor, request=request)
            else:
                environment_services.environment_cancel(env, actor=actor, request=request)
        except TransitionNotAllowed as exc:  # it moved on meanwhile (e.g. it failed); nothing to stop
            logger.info("environment %s not stopped: %s", env.pk, exc)
        else:
            stopped += 1
    return stopped


def user_delete(*, actor: Any, user: Any, request: HttpRequest | None = None) -> int:
    """Deactivate the account, delete each environment (cluster objects first), and remove the
    account once none is left (now, if it has none). Returns the environments still being deleted.

    The actor is an active site admin or manager other than the user, so a site admin is never
    left without another one."""
    from environments import services as environment_services
    from environments.models import Environment
    from environments.states import State, TransitionNotAllowed

    _require_manage(actor, user)
    if user.pk == actor.pk:
        raise ValidationError("You cannot delete your own account.")
    with transaction.atomic():
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        audit_record(DELETE_REQUESTED, actor=actor, target=user, request=request, before={"is_active": True})
    for env in Environment.objects.filter(owner=user).exclude(state=State.DELETING):
        try:
            environment_services.environment_delete(env, actor=actor, request=request)
        except TransitionNotAllowed as exc:
            logger.info("environment %s not deleted: %s", env.pk, exc)
    remaining = Environment.objects.filter(owner=user).count()
    if not remaining:
        _finish(user.pk)
    return remaining


def pending_deletions() -> list[int]:
    """Ids of accounts whose deletion was asked for and not cancelled by a reactivation since."""
    latest: dict[str, str] = {}
    entries = (
        AuditEntry.objects.filter(target_type=USER_TARGET, action__in=[DELETE_REQUESTED, "user.reactivate"])
        .order_by("created_at", "id")
        .values_list("target_id", "action")
    )
    for target_id, action in entries:
        latest[target_id] = action
    ids = [int(pk) for pk, action in latest.items() if action == DELETE_REQUESTED]
    return list(get_user_model().objects.filter(pk__in=ids, is_active=False).values_list("pk", flat=True))


def _finish(user_id: int) -> bool:
    from environments.models import Environment

    User = get_user_model()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=user_id, is_active=False).first()
        if user is None or Environment.objects.filter(owner_id=user_id).exists():
            return False
        audit_record(
            "user.delete",
            target=user,
            before={"username": user.username, "email": user.email, "handle": user.handle},
            message="account removed after its environments were deleted",
        )
        user.delete()
    return True


def finish_user_deletions(owner_id: int | None = None) -> int:
    """Remove accounts pending deletion that have no environment left. Returns how many."""
    pending = pending_deletions()
    if owner_id is not None:
        pending = [pk for pk in pending if pk == owner_id]
    return sum(_finish(pk) for pk in pending)


def _environment_removed(sender: Any, instance: Any, **kwargs: Any) -> None:
    owner_id = instance.owner_id
    transaction.on_commit(lambda: finish_user_deletions(owner_id))


post_delete.connect(
    _environment_removed, sender="environments.Environment", dispatch_uid="coderadmin.lifecycle.env_removed"
)
