import pytest

from environments.states import (
    ALLOWED,
    FINAL_STATES,
    Action,
    State,
    TransitionNotAllowed,
    allowed_actions,
    check_transition,
    is_final,
)

S = State
# The whole machine: (action, from-state) -> new state. Anything missing is refused.
EXPECTED = {
    (Action.CREATE, None): S.CREATING,
    (Action.BUILD, S.CREATING): S.BUILDING,
    (Action.BUILD, S.UNKNOWN): S.BUILDING,
    (Action.MARK_RUNNING, S.BUILDING): S.RUNNING,
    (Action.MARK_RUNNING, S.UNKNOWN): S.RUNNING,
    (Action.STOP, S.RUNNING): S.TURNING_OFF,
    (Action.STOP, S.BUILDING): S.TURNING_OFF,
    (Action.STOP, S.UNKNOWN): S.TURNING_OFF,
    (Action.MARK_OFF, S.TURNING_OFF): S.OFF,
    (Action.START, S.OFF): S.BUILDING,
    (Action.REBUILD, S.RUNNING): S.BUILDING,
    (Action.REBUILD, S.OFF): S.BUILDING,
    (Action.REBUILD, S.ERROR): S.BUILDING,
    (Action.CANCEL, S.CREATING): S.OFF,
    (Action.CANCEL, S.BUILDING): S.OFF,
    (Action.LOSE, S.BUILDING): S.UNKNOWN,
    (Action.LOSE, S.RUNNING): S.UNKNOWN,
    (Action.LOSE, S.TURNING_OFF): S.UNKNOWN,
    (Action.LOSE, S.UNKNOWN): S.UNKNOWN,
    **{(Action.DELETE, s): S.DELETING for s in State if s is not S.DELETING},
    **{(Action.FAIL, s): S.ERROR for s in State if s is not S.DELETING},
}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", [None, *State])
def test_every_action_in_every_state(state, action):
    expected = EXPECTED.get((action, state))
    if expected is None:
        with pytest.raises(TransitionNotAllowed) as info:
            check_transition(state, action)
        assert str(info.value)
        assert info.value.action is action
    else:
        assert check_transition(state, action) is expected


def test_table_matches_the_allowed_map_exactly():
    flattened = {(a, s): new for a, moves in ALLOWED.items() for s, new in moves.items()}
    assert flattened == EXPECTED


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (S.OFF, Action.STOP, "Environment is Off; it cannot be stopped."),
        (S.RUNNING, Action.START, "Environment is Running; it cannot be started."),
        (S.BUILDING, Action.REBUILD, "Environment is Building; it cannot be rebuilt."),
        (S.RUNNING, Action.CANCEL, "Environment is Running; there is no build to cancel."),
        (S.DELETING, Action.DELETE, "Environment is Deleting; nothing else can be done with it."),
        (S.RUNNING, Action.CREATE, "The environment already exists."),
        (None, Action.STOP, "The environment does not exist."),
    ],
)
def test_refusals_read_well(state, action, message):
    with pytest.raises(TransitionNotAllowed, match=message.replace(".", r"\.")):
        check_transition(state, action)


def test_string_values_are_accepted():
    assert check_transition("off", "start") is S.BUILDING


def test_final_states_stop_polling():
    assert {S.RUNNING, S.OFF, S.ERROR} == FINAL_STATES
    assert is_final("running") and is_final("off") and is_final("error")
    assert not any(is_final(s) for s in State if s not in FINAL_STATES)


def test_allowed_actions_for_buttons():
    assert allowed_actions("running") == {
        Action.STOP,
        Action.REBUILD,
        Action.DELETE,
        Action.FAIL,
        Action.LOSE,
    }
    assert allowed_actions("deleting") == frozenset()
