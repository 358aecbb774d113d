"""Configuration validation: every value the pod manifest sets, and every way it can be wrong."""

import pytest

from infrastructure.supervisor import contract
from infrastructure.supervisor.config import CONFIG_ENV, Config, ConfigError, Mount, load_config

VALID = {
    contract.ENV_INNER_IMAGE: "registry.example/team/dev:1.0",
    contract.ENV_INNER_USERNAME: "coder",
    contract.ENV_INNER_HOSTNAME: "alice-dev",
    contract.ENV_CPU_MILLICORES: "1500",
    contract.ENV_MEMORY_BYTES: "4294967296",
}


def load(**overrides: str) -> Config:
    return load_config({**VALID, **overrides})


def reasons(**overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(**overrides)
    return caught.value.reasons


def test_minimal_configuration_has_safe_defaults():
    config = load()
    assert config == Config(
        image="registry.example/team/dev:1.0",
        username="coder",
        hostname="alice-dev",
        cpu_millicores=1500,
        memory_bytes=4294967296,
    )
    assert config.cpu_quota == 150000
    assert config.add_tun is config.add_fuse is False
    assert config.bridge_ip is None and config.bootstrap_script is None and config.inner_command is None


@pytest.mark.parametrize("name", contract.REQUIRED_ENV)
def test_each_required_value_is_required(name):
    assert reasons(**{name: "  "}) == [f"{name} is required"]


def test_every_reason_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_config({})
    assert caught.value.reasons == [f"{name} is required" for name in contract.REQUIRED_ENV]
    assert str(caught.value).startswith("invalid supervisor configuration: ")


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "2 cores", "1e3"])
def test_cpu_must_be_positive_integer_millicores(value):
    assert reasons(**{contract.ENV_CPU_MILLICORES: value}) == [
        f"{contract.ENV_CPU_MILLICORES} must be a whole number of millicores greater than 0, got {value!r}"
    ]


@pytest.mark.parametrize("value", ["0", "4Gi", "-1", "1.0"])
def test_memory_must_be_positive_integer_bytes(value):
    assert reasons(**{contract.ENV_MEMORY_BYTES: value}) == [
        f"{contract.ENV_MEMORY_BYTES} must be a whole number of bytes greater than 0, got {value!r}"
    ]


@pytest.mark.parametrize("value", ["-it", "bad image", "img\tx"])
def test_image_must_be_a_reference(value):
    assert reasons(**{contract.ENV_INNER_IMAGE: value}) == [
        f"{contract.ENV_INNER_IMAGE} {value!r} is not an image reference"
    ]


@pytest.mark.parametrize("value", ["-dash", "has space", "a" * 33, "x:y"])
def test_username_must_be_valid(value):
    assert reasons(**{contract.ENV_INNER_USERNAME: value}) == [
        f"{contract.ENV_INNER_USERNAME} {value!r} is not a valid user name"
    ]


@pytest.mark.parametrize("value", ["Upper", "under_score", "-lead", "a" * 64, "dot..dot"])
def test_hostname_must_be_rfc1123(value):
    [reason] = reasons(**{contract.ENV_INNER_HOSTNAME: value})
    assert reason.startswith(f"{contract.ENV_INNER_HOSTNAME} {value!r} is not a hostname")


@pytest.mark.parametrize("name", [contract.ENV_ADD_TUN, contract.ENV_ADD_FUSE])
def test_booleans(name):
    attribute = "add_tun" if name == contract.ENV_ADD_TUN else "add_fuse"
    for value in ("true", "TRUE", "1", "yes"):
        assert getattr(load(**{name: value}), attribute) is True
    for value in ("false", "0", "no", ""):
        assert getattr(load(**{name: value}), attribute) is False
    assert reasons(**{name: "maybe"}) == [f"{name} must be true or false, got 'maybe'"]


def test_mounts_parse_with_read_only_flag():
    config = load(**{contract.ENV_INNER_MOUNTS: "/var/lib/coderadmin/tools:/opt/tools:ro, /srv/a:/srv/b"})
    assert config.mounts == (
        Mount("/var/lib/coderadmin/tools", "/opt/tools", True),
        Mount("/srv/a", "/srv/b"),
    )
    assert [mount.volume_arg() for mount in config.all_mounts()] == [
        "/var/lib/coderadmin/home:/home/coder",
        "/var/lib/coderadmin/inner-docker:/var/lib/docker",
        "/var/lib/coderadmin/inner-containers:/var/lib/containers",
        "/var/lib/coderadmin/tools:/opt/tools:ro",
        "/srv/a:/srv/b",
    ]


def test_mounts_may_repeat_a_standard_mount_identically():
    value = f"{contract.HOME_SOURCE_PATH}:/home/coder,{contract.INNER_DOCKER_SOURCE_PATH}:/var/lib/docker"
    assert load(**{contract.ENV_INNER_MOUNTS: value}).mounts == ()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/a", "entry '/a' must be src:dst or src:dst:ro"),
        ("/a:/b:rw", "entry '/a:/b:rw' must be src:dst or src:dst:ro"),
        ("/a:/b,", "entry '' must be src:dst or src:dst:ro"),
        ("a:/b", "entry 'a:/b': 'a' is not a normalised absolute path"),
        ("/a:b", "entry '/a:b': 'b' is not a normalised absolute path"),
        ("/a:/b/../etc", "entry '/a:/b/../etc': '/b/../etc' is not a normalised absolute path"),
        ("/a:/b,/c:/b", "entry '/c:/b': /b is mounted twice"),
        ("/elsewhere:/home/coder", "entry '/elsewhere:/home/coder': /home/coder is mounted twice"),
    ],
)
def test_mount_errors(value, reason):
    assert reasons(**{contract.ENV_INNER_MOUNTS: value}) == [f"{contract.ENV_INNER_MOUNTS} {reason}"]


@pytest.mark.parametrize(
    ("value", "bip"),
    [("172.30.0.1/16", "172.30.0.1/16"), ("172.30.0.0/16", "172.30.0.1/16"), ("10.9.8.7/24", "10.9.8.7/24")],
)
def test_bridge_cidr_becomes_gateway_address(value, bip):
    assert load(**{contract.ENV_BRIDGE_CIDR: value}).bridge_ip == bip


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("172.30.0.1", "is too small: use a prefix of /30 or shorter"),  # a bare address is a /32
        ("not-a-cidr", "is not an IPv4 CIDR such as 172.30.0.1/16"),
        ("fd00::1/64", "is not an IPv4 CIDR such as 172.30.0.1/16"),
        ("172.30.0.300/16", "is not an IPv4 CIDR such as 172.30.0.1/16"),
        ("172.30.0.1/31", "is too small: use a prefix of /30 or shorter"),
        ("172.30.255.255/16", "names the broadcast address, not a gateway"),
    ],
)
def test_bridge_cidr_errors(value, reason):
    name = contract.ENV_BRIDGE_CIDR
    assert reasons(**{name: value}) == [f"{name} {value!r} {reason}"]


def test_inner_env_is_a_json_object_of_strings():
    config = load(**{contract.ENV_INNER_ENV: '{"EDITOR": "vim", "_X1": ""}'})
    assert config.inner_env == {"EDITOR": "vim", "_X1": ""}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{not json", "is not valid JSON"),
        ('["A=1"]', "must be a JSON object of strings"),
        ('{"A": 1, "B": null}', "values must be strings: 'A', 'B'"),
        ('{"1A": "x", "A=B": "y"}', "has invalid variable names: '1A', 'A=B'"),
    ],
)
def test_inner_env_errors(value, reason):
    assert reasons(**{contract.ENV_INNER_ENV: value}) == [f"{contract.ENV_INNER_ENV} {reason}"]


def test_inner_command_and_bootstrap():
    config = load(
        **{
            contract.ENV_INNER_COMMAND: '["/usr/bin/code-server", "--bind-addr", "0.0.0.0:8080"]',
            contract.ENV_BOOTSTRAP_SCRIPT: "echo hi\n",
        }
    )
    assert config.inner_command == ("/usr/bin/code-server", "--bind-addr", "0.0.0.0:8080")
    assert config.bootstrap_script == "echo hi\n"
    assert load(**{contract.ENV_BOOTSTRAP_SCRIPT: "  \n"}).bootstrap_script is None


@pytest.mark.parametrize("value", ["[]", '"sleep"', '["a", 2]', '[""]', "{bad"])
def test_inner_command_errors(value):
    assert reasons(**{contract.ENV_INNER_COMMAND: value}) == [
        f"{contract.ENV_INNER_COMMAND} must be a non-empty JSON list of strings"
    ]


class ReadRecorder(dict):
    def __init__(self, data):
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def test_config_env_lists_exactly_the_variables_read():
    environ = ReadRecorder(VALID)
    load_config(environ)
    assert environ.read == set(CONFIG_ENV)
    assert len(CONFIG_ENV) == len(set(CONFIG_ENV))
    contract_names = {
        value for name, value in vars(contract).items() if name.startswith("ENV_") and name != "ENV_PREFIX"
    }
    assert set(CONFIG_ENV) == contract_names
