"""Recovery of work lost with a crashed worker: the reconciler calls ``requeue_stuck``.

Waiting for the broker's visibility timeout (an hour with Redis) would leave a user staring at
"Building" long after the worker died; instead, environments that sat in a transitional state for
longer than ``older_than`` get their task enqueued again. Tasks are idempotent and carry the
current generation, so a task that was merely slow and then runs twice does no harm.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from environments import tasks
from environments.models import Environment
from environments.states import State

DEFAULT_STUCK_AFTER = timedelta(minutes=2)

_TASK_BY_STATE = {
    State.CREATING: tasks.build_environment,
    State.BUILDING: tasks.build_environment,
    State.TURNING_OFF: tasks.stop_environment,
    State.DELETING: tasks.delete_environment,
}


def requeue_stuck(older_than: timedelta = DEFAULT_STUCK_AFTER) -> int:
    """Re-enqueue the task of every environment stuck in a transitional state; returns how many.

    Building environments count as stuck only while their pod was never created (still Creating)
    or when the build started long ago: a slow image pull is not a lost task.
    """
    cutoff = timezone.now() - older_than
    stuck = Environment.objects.filter(
        Q(state__in=[State.CREATING, State.TURNING_OFF, State.DELETING], updated_at__lt=cutoff)
        | Q(state=State.BUILDING, build_started_at__lt=cutoff, updated_at__lt=cutoff)
    ).values_list("pk", "generation", "state")
    count = 0
    for pk, generation, state in stuck:
        _TASK_BY_STATE[State(state)].delay(pk, generation)
        count += 1
    return count
