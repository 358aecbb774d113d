"""The environment state machine: the one place that decides which action may happen when.

Services call ``check_transition(state, action)`` under a row lock and store the state it returns;
a refused action raises ``TransitionNotAllowed`` whose message is shown to the user (409 for htmx).
"""

from __future__ import annotations

from django.db import models


class State(models.TextChoices):
    CREATING = "creating", "Creating"
    BUILDING = "building", "Building"
    RUNNING = "running", "Running"
    TURNING_OFF = "turning_off", "Turning off"
    OFF = "off", "Off"
    ERROR = "error", "Error"
    DELETING = "deleting", "Deleting"
    UNKNOWN = "unknown", "Unknown"


class Action(models.TextChoices):
    """User actions (create, start, stop, rebuild, cancel, delete) and cluster-driven ones."""

    CREATE = "create", "create"
    BUILD = "build", "build"  # the provisioner created the pod (or the cluster came back mid-build)
    MARK_RUNNING = "mark_running", "mark running"  # pod Running and Ready
    STOP = "stop", "stop"
    MARK_OFF = "mark_off", "mark off"  # the pod is gone after a stop
    START = "start", "start"
    REBUILD = "rebuild", "rebuild"
    CANCEL = "cancel", "cancel"
    DELETE = "delete", "delete"
    FAIL = "fail", "fail"
    LOSE = "lose", "lose"  # the cluster cannot be reached, or the pod is in an unknown state


class TransitionNotAllowed(Exception):
    """An action that does not fit the environment's state; ``str()`` is the user-facing message."""

    def __init__(self, state: State | None, action: Action, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.action = action


_ALL = frozenset(State)

# action -> {current state: new state}. CREATE starts from no row at all (state None).
ALLOWED: dict[Action, dict[State | None, State]] = {
    Action.CREATE: {None: State.CREATING},
    Action.BUILD: {State.CREATING: State.BUILDING, State.UNKNOWN: State.BUILDING},
    Action.MARK_RUNNING: {State.BUILDING: State.RUNNING, State.UNKNOWN: State.RUNNING},
    Action.STOP: {
        State.RUNNING: State.TURNING_OFF,
        State.BUILDING: State.TURNING_OFF,
        State.UNKNOWN: State.TURNING_OFF,
    },
    Action.MARK_OFF: {State.TURNING_OFF: State.OFF},
    Action.START: {State.OFF: State.BUILDING},
    Action.REBUILD: {State.RUNNING: State.BUILDING, State.OFF: State.BUILDING, State.ERROR: State.BUILDING},
    Action.CANCEL: {State.CREATING: State.OFF, State.BUILDING: State.OFF},
    Action.DELETE: dict.fromkeys(_ALL - {State.DELETING}, State.DELETING),
    Action.FAIL: dict.fromkeys(_ALL - {State.DELETING}, State.ERROR),
    Action.LOSE: {
        State.BUILDING: State.UNKNOWN,
        State.RUNNING: State.UNKNOWN,
        State.TURNING_OFF: State.UNKNOWN,
        State.UNKNOWN: State.UNKNOWN,
    },
}

# States in which nothing changes without a user action: live polling stops there.
FINAL_STATES = frozenset({State.RUNNING, State.OFF, State.ERROR})
# States a crashed worker can leave behind; the reconciler re-enqueues their work.
TRANSITIONAL_STATES = frozenset({State.CREATING, State.BUILDING, State.TURNING_OFF, State.DELETING})

_VERB_PAST = {
    Action.STOP: "stopped",
    Action.START: "started",
    Action.REBUILD: "rebuilt",
    Action.DELETE: "deleted",
}


def is_final(state: str) -> bool:
    """True when the environment page can stop polling."""
    return state in FINAL_STATES


def allowed_actions(state: str) -> frozenset[Action]:
    """The actions possible from ``state`` (to decide which buttons to show)."""
    current = State(state)
    return frozenset(action for action, moves in ALLOWED.items() if current in moves)


def _refusal(state: State | None, action: Action) -> str:
    if state is None:
        return "The environment does not exist."
    if action is Action.CREATE:
        return "The environment already exists."
    label = state.label
    if state is State.DELETING:
        return f"Environment is {label}; nothing else can be done with it."
    if action is Action.CANCEL:
        return f"Environment is {label}; there is no build to cancel."
    if action in _VERB_PAST:
        return f"Environment is {label}; it cannot be {_VERB_PAST[action]}."
    return f"Environment is {label}; it cannot {action.label} now."


def check_transition(state: str | None, action: str) -> State:
    """Return the state after ``action`` from ``state``, or raise ``TransitionNotAllowed``."""
    current = None if state is None else State(state)
    act = Action(action)
    try:
        return ALLOWED[act][current]
    except KeyError:
        raise TransitionNotAllowed(current, act, _refusal(current, act)) from None
