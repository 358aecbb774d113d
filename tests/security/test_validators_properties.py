"""Property tests: forms, validators and parsers that take user or cluster input never fail except as
a validation error, and what they accept keeps their promises.

Already covered elsewhere (not repeated here): the readiness parsers (tests/infrastructure/
test_nodeinfo.py, test_readiness.py), the CIDR/selector/toleration validators (test_validators.py),
the cloud guide builders (test_guides.py), image references (tests/environments/test_references.py),
handles and slugs (tests/coderadmin/).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.test import Client, RequestFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coderadmin.audit import client_ip
from coderadmin.forms import UserCreateForm, UserEditForm
from coderadmin.roles import Role
from environments.forms import EnvironmentCreateForm, ImageForm, RebuildForm
from environments.models import (
    ENVIRONMENT_NAME_MAX_LENGTH,
    validate_command,
    validate_environment_name,
    validate_image_username,
)
from environments.references import validate_repository, validate_tag
from environments.selectors import enabled_images
from infrastructure.forms import OverrideForm, SettingsForm, ToggleForm
from infrastructure.models import InfrastructureSettings
from infrastructure.supervisor import contract
from infrastructure.watcher import assess_pod
from tests.environments.factories import EnvironmentFactory, ImageTagFactory
from tests.factories import member, site_admin, site_manager

PROPERTIES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VIEWS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Hostile text: anything, plus the characters that break storage, shells and markup.
junk = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="\x00\r\n\t<>\"'&;|$`\\/{}[]%", max_size=20),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", " ", "-1", "0", "1e9", "NaN", "null", "[]", "{}", "on", "true"]),
)


def values(*valid: str) -> st.SearchStrategy[str]:
    """Mostly valid values (so the accepting paths run too), often junk."""
    return st.one_of(st.sampled_from(valid), junk)


def form_data(fields: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, str]]:
    """Any subset of the fields, each with a valid or hostile value."""
    return st.fixed_dictionaries({}, optional=fields)


# ------------------------------------------------------------------------ plain validators


@PROPERTIES
@given(st.text(max_size=80))
def test_environment_names_accepted_are_dns_labels(name):
    try:
        validate_environment_name(name)
    except ValidationError:
        return
    assert 1 <= len(name) <= ENVIRONMENT_NAME_MAX_LENGTH
    assert name.isascii() and name == name.lower() and name[0].isalpha() and name[-1].isalnum()
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") and "--" not in name


@PROPERTIES
@given(st.text(max_size=60))
def test_image_usernames_accepted_are_plain_linux_names(name):
    try:
        validate_image_username(name)
    except ValidationError:
        return
    assert 1 <= len(name) <= 32 and not name[0].isdigit()
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@PROPERTIES
@given(json_values)
def test_commands_accepted_are_non_empty_lists_of_strings(value):
    try:
        validate_command(value)
    except ValidationError:
        return
    assert value is None or (
        isinstance(value, list) and all(isinstance(part, str) for part in value) and value[0].strip()
    )


# -------------------------------------------------------------------------- cluster input


@PROPERTIES
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_build_log_parsing_never_fails_on_any_line(line):
    parsed = contract.parse_log_line(line)
    if parsed is not None:
        assert parsed.type in contract.LOG_TYPES and isinstance(parsed.output, str)
        assert parsed.time.tzinfo is not None
        contract.parse_entrypoint(parsed.output)


@PROPERTIES
@given(
    st.sampled_from(sorted(contract.LOG_TYPES)),
    st.text(max_size=100),
    st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_build_log_lines_round_trip(type_, output, when):
    parsed = contract.parse_log_line(contract.format_log_line(type_, output, when))
    assert (parsed.type, parsed.output, parsed.time) == (type_, output, when)


text_or_none = st.one_of(st.none(), st.text(max_size=30))
container_state = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "waiting": st.fixed_dictionaries(
                {},
                optional={
                    "reason": st.sampled_from(["ErrImagePull", "ImagePullBackOff", "x"]) | text_or_none,
                    "message": text_or_none,
                },
            ),
            "terminated": st.fixed_dictionaries(
                {},
                optional={
                    "exitCode": st.none() | st.integers(),
                    "reason": text_or_none,
                    "message": text_or_none,
                },
            ),
            "running": st.just({"startedAt": "2026-01-01T00:00:00Z"}),
        },
    ),
)
pods = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "deletionTimestamp": text_or_none,
                "labels": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
            },
        ),
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "nodeName": st.text(max_size=20),
                "containers": st.lists(st.fixed_dictionaries({"name": st.text(max_size=12)}), max_size=2),
            },
        ),
        "status": st.fixed_dictionaries(
            {},
            optional={
                "phase": st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown"])
                | st.text(max_size=8),
                "message": text_or_none,
                "reason": text_or_none,
                "conditions": st.lists(
                    st.fixed_dictionaries(
                        {
                            "type": st.sampled_from(["Ready", "PodScheduled"]),
                            "status": st.sampled_from(["True", "False", "Unknown"]),
                        }
                    ),
                    max_size=2,
                ),
                "containerStatuses": st.lists(
                    st.fixed_dictionaries(
                        {"name": st.text(max_size=12)},
                        optional={
                            "state": container_state,
                            "ready": st.booleans(),
                            "image": st.text(max_size=20),
                        },
                    ),
                    max_size=2,
                ),
            },
        ),
    },
)


@PROPERTIES
@given(pods)
def test_any_pod_status_the_api_can_send_is_assessed(pod):
    assessment = assess_pod(pod)
    if assessment is not None:
        assert isinstance(assessment.reason, str)


@PROPERTIES
@given(
    remote=st.one_of(st.ip_addresses().map(str), st.text(max_size=40)),
    forwarded=st.one_of(
        st.lists(st.ip_addresses().map(str), max_size=4).map(", ".join), st.text(max_size=60)
    ),
    hops=st.integers(0, 3),
)
def test_client_addresses_are_ip_addresses_or_nothing(remote, forwarded, hops):
    """The audit log stores the result in an IP address column: it must be one, whatever a client sends."""
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.conf.settings.TRUSTED_PROXY_COUNT", hops, raising=False)
        address = client_ip(request)
    if address is not None:
        assert str(ipaddress.ip_address(address)) == address
    if hops == 0:
        with contextlib.suppress(ValueError):
            assert address == str(ipaddress.ip_address(remote))


# ---------------------------------------------------------------------------------- forms


@pytest.fixture
def catalogue(db):
    """Two enabled images with tags, and a member who may create environments."""
    ImageTagFactory(
        image__repository="ghcr.io/coderadmin/example-plain", tag="1", image__min_cpu_millicores=250
    )
    ImageTagFactory(image__repository="ghcr.io/coderadmin/example-systemd", tag="2")
    return member(username="prop-member")


@PROPERTIES
@given(data=st.data())
def test_the_environment_create_form_only_ever_reports_errors(catalogue, data):
    infra = InfrastructureSettings.load()
    images = enabled_images()
    tag_ids = [str(tag.pk) for image in images for tag in image.tags.all()]
    submitted = data.draw(
        form_data(
            {
                "name": values("web", "my-env2", "a", "x" * 40),
                "image_tag": values(*tag_ids),
                "cpu_millicores": values("250", "1000", "8000", "8001"),
                "memory_mib": values("512", "4096", "100000"),
                "disk_gib": values("1", "20", "101"),
                "gpu_count": values("0", "1"),
                "cvm": values("on", ""),
            }
        )
    )
    form = EnvironmentCreateForm(submitted, owner=catalogue, infrastructure=infra, images=images)
    if form.is_valid():
        cleaned = form.cleaned_data
        validate_environment_name(cleaned["name"])
        assert cleaned["image_tag"].image.enabled
        assert 1 <= cleaned["cpu_millicores"] <= infra.max_cpu_millicores
        assert 1 <= cleaned["memory_mib"] <= infra.max_memory_mib
        assert 1 <= cleaned["disk_gib"] <= infra.max_disk_gib
        assert 0 <= cleaned["gpu_count"] <= infra.max_gpu_count
        assert cleaned["cvm"] is False  # CVMs are off in these settings
    else:
        assert form.errors


@VIEWS
@given(data=st.data())
def test_posting_anything_to_the_create_page_never_fails(catalogue, data):
    tag_ids = [str(tag.pk) for image in enabled_images() for tag in image.tags.all()]
    submitted = data.draw(
        form_data(
            {
                "name": values("web", "ok-name"),
                "image_tag": values(*tag_ids),
                "cpu_millicores": values("1000"),
                "memory_mib": values("1024"),
                "disk_gib": values("5"),
                "gpu_count": values("0"),
                "cvm": values("on"),
            }
        )
    )
    client = Client()
    client.force_login(catalogue)
    response = client.post("/environments/new/", submitted)
    assert response.status_code in (302, 400)


@PROPERTIES
@given(data=st.data())
def test_the_rebuild_form_only_ever_reports_errors(catalogue, data):
    environment = EnvironmentFactory(owner=catalogue, image=enabled_images()[0], tag="1")
    infra = InfrastructureSettings.load()
    submitted = data.draw(
        form_data(
            {
                "tag": values("1", "2", "latest"),
                "cpu_millicores": values("500", "9000"),
                "memory_mib": values("1024"),
                "disk_gib": values("20", "1"),
            }
        )
    )
    form = RebuildForm(submitted, environment=environment, infrastructure=infra)
    if form.is_valid():
        assert form.cleaned_data["tag"] in {tag.tag for tag in environment.image.tags.all()}
        assert 1 <= form.cleaned_data["cpu_millicores"] <= infra.max_cpu_millicores
        assert form.cleaned_data["disk_gib"] >= environment.disk_gib  # a disk only grows
    else:
        assert form.errors
    environment.delete()


@PROPERTIES
@given(data=st.data())
def test_the_image_form_only_ever_reports_errors(db, data):
    submitted = data.draw(
        form_data(
            {
                "repository": values("registry.example.com/team/dev", "ubuntu", "localhost:5000/x"),
                "description": junk,
                "tags": values("1.0", "1.0 2.0", "latest,edge", "sha256:" + "a" * 64),
                "default_tag": values("1.0", ""),
                "username": values("coder", "root"),
                "run_as_uid": values("1000", "0", ""),
                "command": values('["/usr/bin/code-server"]', "", '[""]', '"x"'),
                "min_cpu_millicores": values("250"),
                "min_memory_mib": values("512"),
                "min_disk_gib": values("1"),
                "registry_username": values("robot", ""),
                "registry_password": values("secret", ""),
                "enabled": values("on"),
                "deprecated": values("on", ""),
            }
        )
    )
    form = ImageForm(submitted, infrastructure=InfrastructureSettings.load())
    if form.is_valid():
        image = form.image_data()
        validate_repository(image.repository)
        validate_image_username(image.username)
        validate_command(image.command)
        assert image.tags and image.default_tag in image.tags
        for tag in image.tags:
            validate_tag(tag)
    else:
        assert form.errors


@pytest.fixture
def actors(db):
    return {"admin": site_admin(username="prop-admin"), "manager": site_manager(username="prop-manager")}


user_fields = {
    "username": values("newbie", "new.user@x", "ünïcode"),
    "email": values("a@example.com", ""),
    "role": values(*[role.value for role in Role]),
    "handle": values("newbie", "", "Bad Handle"),
    "is_staff": values("on", ""),
    "password1": values("Xq9-long-enough-pass"),
    "password2": values("Xq9-long-enough-pass"),
}


@PROPERTIES
@given(data=st.data(), who=st.sampled_from(["admin", "manager"]))
def test_the_user_forms_never_let_a_manager_hand_out_more_than_member(actors, data, who):
    actor = actors[who]
    create = UserCreateForm(data.draw(form_data(user_fields)), actor=actor)
    edit = UserEditForm(
        data.draw(form_data({k: user_fields[k] for k in ("email", "role", "handle", "is_staff")})),
        actor=actor,
    )
    for form in (create, edit):
        if form.is_valid():
            if who == "manager":
                assert form.cleaned_data["role"] == Role.MEMBER.value
                assert "is_staff" not in form.cleaned_data and "handle" not in form.cleaned_data
            else:
                assert Role(form.cleaned_data["role"])
        else:
            assert form.errors


@VIEWS
@given(data=st.data())
def test_posting_anything_to_the_users_page_never_fails(actors, data):
    client = Client()
    client.force_login(actors["manager"])
    response = client.post("/manage/users/", data.draw(form_data(user_fields)))
    assert response.status_code in (302, 400)


NUMBER_SETTINGS = (
    "default_cpu_millicores",
    "max_cpu_millicores",
    "default_memory_mib",
    "max_memory_mib",
    "default_disk_gib",
    "max_disk_gib",
    "default_gpu_count",
    "max_gpu_count",
    "max_environments_per_member",
    "build_timeout_seconds",
    "cvm_termination_grace_seconds",
)


@PROPERTIES
@given(data=st.data())
def test_the_settings_form_only_ever_reports_errors(db, data):
    infra = InfrastructureSettings.load()
    numbers = values("1", "100", "2000", "16384", "0", "17")
    submitted = data.draw(
        form_data(
            {
                "default_to_cvm": values("on", ""),
                "cvm_backend": values("supervisor", "runtimeclass", "other"),
                "supervisor_image": values("ghcr.io/coderadmin/coderadmin-supervisor:0.1.0", ""),
                "add_tun": values("on"),
                "add_fuse": values("on"),
                "inner_bridge_cidr": values("172.31.0.1/16", "10.0.0.0/8", "0.0.0.0/0", "fe80::/64"),
                "environments_namespace": values("coderadmin-environments", "Kube System", "default"),
                "storage_class": values("", "fast-ssd"),
                "cvm_node_selector": values("", "pool=cvm", "a=b\nc=d", "=x"),
                "cvm_tolerations": values("", "[]", '[{"key": "cvm", "operator": "Exists"}]', "[1]"),
                **dict.fromkeys(NUMBER_SETTINGS, numbers),
            }
        )
    )
    form = SettingsForm(submitted, instance=infra, cluster_cidrs=["10.0.0.0/8"])
    if form.is_valid():
        changes = form.changes()
        assert set(changes) <= set(SettingsForm.Meta.fields)
        if "inner_bridge_cidr" in form.cleaned_data:
            network = ipaddress.ip_network(form.cleaned_data["inner_bridge_cidr"], strict=False)
            assert not network.overlaps(ipaddress.ip_network("10.0.0.0/8"))
    else:
        assert form.errors


@PROPERTIES
@given(data=st.data())
def test_the_toggle_and_override_forms_only_ever_report_errors(db, data):
    ToggleForm(data.draw(form_data({"enabled": values("on", "")}))).is_valid()
    override = OverrideForm(data.draw(form_data({"report": values("1", "0"), "override": values("on")})))
    if override.is_valid():
        assert override.cleaned_data["override"] is True and override.cleaned_data["report"] >= 1


@VIEWS
@given(data=st.data(), provider=st.sampled_from(["gke", "eks", "aks", "sysbox", "", "nope"]))
def test_the_guides_page_answers_any_query(actors, data, provider):
    query = data.draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "cluster_name",
                    "location",
                    "version",
                    "machine_type",
                    "num_nodes",
                    "region",
                    "ami_family",
                    "desired_capacity",
                    "min_size",
                    "max_size",
                    "node_names",
                    "resource_group",
                    "node_count",
                    "existing_cluster",
                    "needs_shiftfs",
                    "project",
                    "pool_name",
                    "vm_size",
                ]
            ),
            junk,
            max_size=6,
        )
    )
    client = Client()
    client.force_login(actors["admin"])
    response = client.get("/manage/infrastructure/guides/", {"provider": provider, **query})
    assert response.status_code == 200


@VIEWS
@given(username=junk, password=junk, remote=st.one_of(st.ip_addresses().map(str), st.text(max_size=20)))
def test_the_sign_in_form_answers_any_input(db, username, password, remote):
    response = Client(REMOTE_ADDR=remote).post(
        "/accounts/login/", {"username": username, "password": password}
    )
    assert response.status_code == 200  # nobody has these credentials
