from hypothesis import given
from hypothesis import strategies as st

from coderadmin.slugs import DNS_LABEL_MAX, is_safe_slug, safe_slug


def test_safe_names_are_unchanged():
    for name in ["alice", "dev-box-1", "a", "x" * 63]:
        assert safe_slug(name) == name


def test_unsafe_names_are_normalised_and_hashed():
    slug = safe_slug("Alice's Box!")
    assert slug.startswith("alice-s-box---")
    assert is_safe_slug(slug.replace("---", "-"))


def test_double_dash_names_are_hashed_so_they_cannot_collide_with_hashed_output():
    assert safe_slug("a--b") != "a--b"


@given(st.text(max_size=200))
def test_any_input_gives_a_valid_dns_label(name):
    slug = safe_slug(name)
    assert len(slug) <= DNS_LABEL_MAX
    import re

    assert re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", slug)


@given(st.text(max_size=80), st.text(max_size=80))
def test_different_inputs_never_collide(a, b):
    if a != b:
        assert safe_slug(a) != safe_slug(b)
