import pytest

from .harness import Harness


@pytest.fixture
def harness() -> Harness:
    """A supervisor wired to the recording fake runner (see harness.py)."""
    return Harness()
