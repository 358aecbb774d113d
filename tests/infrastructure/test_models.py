import pytest
from django.core.exceptions import ValidationError

from infrastructure.models import (
    DEFAULT_INNER_BRIDGE_CIDR,
    InfrastructureSettings,
    InfrastructureSettingsChange,
    default_supervisor_image,
    validate_bridge_cidr,
    validate_node_selector,
    validate_tolerations,
)
from tests.environments.factories import make_user


@pytest.mark.django_db
def test_load_creates_one_row_with_safe_defaults():
    first = InfrastructureSettings.load()
    second = InfrastructureSettings.load()
    assert first.pk == second.pk == 1
    assert InfrastructureSettings.objects.count() == 1
    assert first.cvm_enabled is False
    assert first.cvm_backend == "supervisor"
    assert first.environments_namespace == "coderadmin-environments"
    assert first.inner_bridge_cidr == DEFAULT_INNER_BRIDGE_CIDR
    assert first.max_environments_per_member == 50
    assert first.build_timeout_seconds == 900
    assert first.cvm_termination_grace_seconds == 90
    assert first.cvm_node_selector == {}
    assert first.cvm_tolerations == []
    first.full_clean()


@pytest.mark.django_db
def test_saving_a_new_instance_updates_the_singleton():
    InfrastructureSettings.load()
    InfrastructureSettings(cvm_enabled=True).save()
    assert InfrastructureSettings.objects.count() == 1
    assert InfrastructureSettings.load().cvm_enabled is True


def test_supervisor_image_default_follows_settings_and_version(settings):
    settings.SUPERVISOR_IMAGE_PREFIX = "registry.example.com/ops"
    image = default_supervisor_image()
    assert image.startswith("registry.example.com/ops/coderadmin-supervisor:")
    assert image.rsplit(":", 1)[1]


@pytest.mark.parametrize("cidr", ["172.30.0.1/24", "10.200.0.1/16", "192.168.254.1/30"])
def test_valid_bridge_cidrs(cidr):
    validate_bridge_cidr(cidr)


@pytest.mark.parametrize(
    "cidr", ["", "nonsense", "172.30.0.1", "8.8.8.1/24", "fd00::1/64", "172.30.0.0/24", "172.30.0.1/31"]
)
def test_invalid_bridge_cidrs(cidr):
    with pytest.raises(ValidationError):
        validate_bridge_cidr(cidr)


def test_default_bridge_avoids_common_cluster_and_docker_ranges():
    import ipaddress

    bridge = ipaddress.ip_interface(DEFAULT_INNER_BRIDGE_CIDR).network
    for taken in ["10.0.0.0/8", "192.168.0.0/16", "172.17.0.0/16", "172.20.0.0/16", "172.31.0.0/16"]:
        assert not bridge.overlaps(ipaddress.ip_network(taken))


def test_node_selector_validation():
    validate_node_selector({"pool": "cvm"})
    for bad in [[], {"": "x"}, {"a": 1}, "pool=cvm"]:
        with pytest.raises(ValidationError):
            validate_node_selector(bad)


def test_toleration_validation():
    validate_tolerations([{"key": "cvm", "operator": "Exists", "effect": "NoSchedule"}])
    validate_tolerations([{"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30}])
    for bad in [
        {},
        [1],
        [{"key": "k", "operator": "Maybe"}],
        [{"key": "k", "effect": "Sometimes"}],
        [{"key": "k", "surprise": 1}],
        [{"key": "k", "tolerationSeconds": "30"}],
        [{"key": "k", "tolerationSeconds": True}],
        [{"key": 5}],
    ]:
        with pytest.raises(ValidationError):
            validate_tolerations(bad)


@pytest.mark.django_db
def test_defaults_above_maximums_are_refused():
    infra = InfrastructureSettings.load()
    infra.default_cpu_millicores = 9000
    infra.max_cpu_millicores = 8000
    infra.default_gpu_count = 1
    with pytest.raises(ValidationError) as info:
        infra.full_clean()
    assert {"default_cpu_millicores", "default_gpu_count"} <= set(info.value.message_dict)


@pytest.mark.django_db
def test_namespace_and_grace_period_are_validated():
    infra = InfrastructureSettings.load()
    infra.environments_namespace = "Not_A_Namespace"
    infra.cvm_termination_grace_seconds = 0
    with pytest.raises(ValidationError) as info:
        infra.full_clean()
    assert {"environments_namespace", "cvm_termination_grace_seconds"} <= set(info.value.message_dict)


@pytest.mark.django_db
def test_change_history_records_who_what_and_when():
    user = make_user("admin1")
    infra = InfrastructureSettings.load()
    infra.updated_by = user
    infra.save()
    InfrastructureSettingsChange.objects.create(
        changed_by=user, field="cvm_enabled", old_value="False", new_value="True"
    )
    InfrastructureSettingsChange.objects.create(
        changed_by=user, field="add_tun", old_value="False", new_value="True"
    )
    history = list(InfrastructureSettingsChange.objects.all())
    assert [h.field for h in history] == ["add_tun", "cvm_enabled"]
    assert str(history[1]) == "cvm_enabled: False → True"
    assert history[0].changed_at is not None
    assert InfrastructureSettings.load().updated_by == user
