import json

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from infrastructure.validators import (
    MAX_TEXT,
    label_key_errors,
    label_value_errors,
    validate_bridge_cidr,
    validate_node_selector,
    validate_tolerations,
)


def _messages(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return " | ".join(exc.value.messages)


def _code(exc: pytest.ExceptionInfo[ValidationError]) -> str | None:
    return exc.value.error_list[0].code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("172.20.0.0/16", "172.20.0.0/16"),
        ("  172.20.0.1/16 ", "172.20.0.0/16"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.100.0/28", "192.168.100.0/28"),
        ("100.64.0.0/10", "100.64.0.0/10"),
        ("172.17.0.0/16", "172.17.0.0/16"),
    ],
)
def test_bridge_cidr_accepts_and_normalises(raw, expected):
    assert validate_bridge_cidr(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("", "required", "Enter a CIDR range"),
        ("   ", "required", "Enter a CIDR range"),
        ("172.20.0.0", "invalid", "no prefix length"),
        ("172.20.0.300/16", "invalid", "not a valid CIDR"),
        ("not a cidr/16", "invalid", "not a valid CIDR"),
        ("172.20.0.0/33", "invalid", "not a valid CIDR"),
        ("fd00::/64", "ipv4_only", "Only IPv4"),
        ("10.0.0.0/7", "prefix", "/7 is too large a range"),
        ("192.168.1.0/29", "prefix", "/29 is too small"),
        ("127.0.0.0/16", "reserved", "loopback"),
        ("169.254.0.0/16", "reserved", "link-local"),
        ("224.1.0.0/16", "reserved", "multicast"),
        ("240.0.0.0/8", "reserved", "reserved range"),
        ("0.0.0.0/8", "reserved", "'this network'"),
        ("8.8.0.0/16", "public", "public internet range"),
        ("172.0.0.0/8", "public", "public internet range"),
    ],
)
def test_bridge_cidr_rejects_with_clear_message(raw, code, words):
    with pytest.raises(ValidationError) as exc:
        validate_bridge_cidr(raw)
    assert _code(exc) == code
    assert words in _messages(exc)


def test_bridge_cidr_overlapping_cluster_ranges_names_them():
    with pytest.raises(ValidationError) as exc:
        validate_bridge_cidr("10.4.0.0/16", ["10.0.0.0/14", "10.96.0.0/12", "10.4.128.0/20"])
    assert _code(exc) == "overlap"
    assert _messages(exc) == (
        "10.4.0.0/16 overlaps the cluster's pod/service range 10.4.128.0/20; pick a range outside it."
    )


def test_bridge_cidr_overlap_lists_every_clash():
    with pytest.raises(ValidationError) as exc:
        validate_bridge_cidr("10.0.0.0/8", ["10.0.0.0/14", "10.96.0.0/12"])
    assert "10.0.0.0/14, 10.96.0.0/12" in _messages(exc)


def test_bridge_cidr_ignores_unusable_cluster_ranges():
    assert (
        validate_bridge_cidr("172.20.0.0/16", ["garbage", "fd00::/48", "10.0.0.0/14", ""]) == "172.20.0.0/16"
    )


def test_bridge_cidr_non_string_is_required_error():
    with pytest.raises(ValidationError) as exc:
        validate_bridge_cidr(None)  # type: ignore[arg-type]
    assert _code(exc) == "required"


@given(st.text(max_size=60), st.lists(st.text(max_size=30), max_size=3))
def test_bridge_cidr_only_raises_validation_error(value, cluster):
    try:
        result = validate_bridge_cidr(value, cluster)
    except ValidationError:
        return
    assert "/" in result


@given(st.ip_addresses(v=4), st.integers(8, 28))
def test_bridge_cidr_accepted_results_are_stable(address, prefix):
    try:
        result = validate_bridge_cidr(f"{address}/{prefix}")
    except ValidationError:
        return
    assert validate_bridge_cidr(result) == result


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("node-pool", True),
        ("cloud.google.com/gke-nodepool", True),
        ("kubernetes.io/os", True),
        ("coderadmin.dev/cvm", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-bad", False),
        ("bad-", False),
        ("Example.COM/x", False),
        ("/x", False),
        ("a/b/c", False),
        ("", False),
        ("has space", False),
    ],
)
def test_label_key_rules(key, ok):
    assert (label_key_errors(key) == []) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("true", True), ("a.b_c-d", True), ("v" * 64, False), ("-x", False), ("x y", False)],
)
def test_label_value_rules(value, ok):
    assert (label_value_errors(value) == []) is ok


def test_node_selector_lines():
    text = "# CVM nodes\ncloud.google.com/gke-nodepool = cvm\n\nkubernetes.io/os=linux\nempty=\n"
    assert validate_node_selector(text) == {
        "cloud.google.com/gke-nodepool": "cvm",
        "kubernetes.io/os": "linux",
        "empty": "",
    }


def test_node_selector_json():
    assert validate_node_selector('{"sysbox-runtime": "running"}') == {"sysbox-runtime": "running"}


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment"])
def test_node_selector_empty_means_any_node(text):
    assert validate_node_selector(text) == {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("just-a-key", "line 1: write key=value (got 'just-a-key')"),
        ("a=b\n-bad=x", "line 2: the key name '-bad'"),
        ("a=b\na=c", "line 2: the key 'a' appears twice"),
        ("a=has space", "line 1: the value 'has space'"),
        ('{"a": 1}', "'a': the value must be a string"),
        ('{"a": "b"', "not valid JSON"),
        ("{", "not valid JSON"),
        ('{"Bad Key": "x"}', "'Bad Key': the key name"),
    ],
)
def test_node_selector_errors(text, words):
    with pytest.raises(ValidationError) as exc:
        validate_node_selector(text)
    assert words in _messages(exc)


def test_node_selector_empty_json_object():
    assert validate_node_selector("{}") == {}


def test_node_selector_reports_every_bad_line():
    with pytest.raises(ValidationError) as exc:
        validate_node_selector("x\ny\nok=1")
    assert exc.value.messages == [
        "line 1: write key=value (got 'x')",
        "line 2: write key=value (got 'y')",
    ]


def test_node_selector_too_long():
    with pytest.raises(ValidationError) as exc:
        validate_node_selector("a=b\n" * (MAX_TEXT // 4 + 1))
    assert _code(exc) == "too_long"


def test_tolerations_normalised():
    text = json.dumps(
        [
            {"key": "dedicated", "operator": "Equal", "value": "cvm", "effect": "NoSchedule"},
            {"key": "sysbox-runtime", "value": "not-running", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
            {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"operator": "Exists"},
        ]
    )
    assert validate_tolerations(text) == [
        {"operator": "Equal", "key": "dedicated", "value": "cvm", "effect": "NoSchedule"},
        {"operator": "Equal", "key": "sysbox-runtime", "value": "not-running", "effect": "NoSchedule"},
        {"operator": "Exists", "key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
        {"operator": "Exists", "key": "spot", "effect": "NoExecute", "tolerationSeconds": 300},
        {"operator": "Exists"},
    ]


@pytest.mark.parametrize("text", ["", "  ", "[]"])
def test_tolerations_empty(text):
    assert validate_tolerations(text) == []


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"key": "a", "operator": "In"}, "operator must be Equal or Exists, not 'In'"),
        ({"key": "a", "operator": "Exists", "value": "x"}, "value must be empty when operator is Exists"),
        ({"value": "x"}, "operator must be Exists when key is empty"),
        ({"key": "a", "effect": "NoRun"}, "effect must be NoSchedule, PreferNoSchedule or NoExecute"),
        ({"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5}, "only allowed with effect NoExecute"),
        ({"key": "a", "effect": "NoExecute", "tolerationSeconds": -1}, "whole number of seconds"),
        ({"key": "a", "effect": "NoExecute", "tolerationSeconds": 1.5}, "whole number of seconds"),
        ({"key": "a", "effect": "NoExecute", "tolerationSeconds": True}, "whole number of seconds"),
        ({"key": "a", "colour": "red"}, "unknown field 'colour'"),
        ({"key": 5}, "key must be a string"),
        ({"key": "bad key"}, "the key name 'bad key'"),
        ({"key": "a", "value": "-x"}, "the value '-x'"),
        ("dedicated", "must be an object"),
    ],
)
def test_toleration_errors(item, words):
    with pytest.raises(ValidationError) as exc:
        validate_tolerations(json.dumps([{"operator": "Exists"}, item]))
    assert words in _messages(exc)
    assert _messages(exc).startswith("toleration 2: ")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"key": "a"}', "must be a JSON list"),
        ("[", "not valid JSON"),
        ("[" * 10_000, "not valid JSON"),
        ("[1" + "0" * 5000 + "]", "not valid JSON"),
    ],
)
def test_tolerations_bad_documents(text, words):
    with pytest.raises(ValidationError) as exc:
        validate_tolerations(text)
    assert words in _messages(exc)


def test_deeply_nested_json_is_a_validation_error():
    with pytest.raises(ValidationError) as exc:
        validate_tolerations("[" * 8000 + "]" * 8000)
    assert "not valid JSON" in _messages(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
toleration_like = st.fixed_dictionaries(
    {},
    optional={
        "key": st.one_of(st.sampled_from(["dedicated", "", "a/b", "x y"]), json_values),
        "operator": st.one_of(st.sampled_from(["Equal", "Exists", "In"]), json_values),
        "value": st.one_of(st.sampled_from(["cvm", "", "-"]), json_values),
        "effect": st.one_of(st.sampled_from(["NoSchedule", "NoExecute", ""]), json_values),
        "tolerationSeconds": json_values,
    },
)


@given(
    st.one_of(st.text(max_size=200), json_values.map(json.dumps), st.lists(toleration_like).map(json.dumps))
)
def test_tolerations_only_raise_validation_error(text):
    try:
        result = validate_tolerations(text)
    except ValidationError:
        return
    assert isinstance(result, list)
    assert all(item["operator"] in ("Equal", "Exists") for item in result)


@given(
    st.one_of(
        st.text(max_size=200),
        json_values.map(json.dumps),
        st.dictionaries(st.text(max_size=20), st.text(max_size=20)).map(
            lambda d: "\n".join(f"{k}={v}" for k, v in d.items())
        ),
    )
)
def test_node_selector_only_raises_validation_error(text):
    try:
        result = validate_node_selector(text)
    except ValidationError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())
    assert all(label_key_errors(k) == [] and label_value_errors(v) == [] for k, v in result.items())
