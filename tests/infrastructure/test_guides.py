import re
import shlex
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infrastructure.guides import (
    CVM_NODE_LABELS,
    EKS_DEFAULT_VERSION,
    GKE_IMAGE_TYPE,
    IMAGE_DOCKERFILE_DOCKER,
    IMAGE_DOCKERFILE_SYSTEMD,
    SYSBOX_INSTALL_MANIFEST,
    SYSBOX_LABELS,
    SYSBOX_NOTES,
    AksGuideInput,
    EksGuideInput,
    GkeGuideInput,
    aks_argv,
    aks_commands,
    display_command,
    eks_argv,
    eks_commands,
    eks_config,
    eks_config_yaml,
    gke_argv,
    gke_commands,
    gke_notes,
    sysbox_argv,
    sysbox_steps,
    validate_aks,
    validate_eks,
    validate_gke,
    validate_sysbox,
)

# --- GKE ---


def test_gke_new_cluster_in_a_zone_with_defaults():
    inp, errors = validate_gke({"cluster_name": "dev", "location": "us-central1-a", "project": "my-proj-1"})
    assert errors == {}
    assert gke_commands(inp) == [
        "gcloud container clusters create dev --project my-proj-1 --zone us-central1-a "
        "--release-channel regular --image-type UBUNTU_CONTAINERD --machine-type e2-standard-4 --num-nodes 2 "
        "--node-labels coderadmin.dev/cvm=true",
        "gcloud container clusters get-credentials dev --project my-proj-1 --zone us-central1-a",
    ]


def test_gke_node_pool_on_existing_regional_cluster_with_version_and_shiftfs():
    inp, errors = validate_gke(
        {
            "cluster_name": "prod",
            "location": "europe-west4",
            "existing_cluster": "on",
            "pool_name": "cvm",
            "version": "1.33.5-gke.1080000",
            "machine_type": "n2-standard-8",
            "num_nodes": "3",
            "needs_shiftfs": "true",
            "node_labels": "pool=cvm\nteam=dev",
        }
    )
    assert errors == {}
    assert gke_commands(inp) == [
        "gcloud container node-pools create cvm --cluster prod --region europe-west4 "
        "--node-version 1.33.5-gke.1080000 --image-type UBUNTU_CONTAINERD --machine-type n2-standard-8 "
        "--num-nodes 3 --node-labels pool=cvm,team=dev --no-shielded-secure-boot",
        "gcloud container clusters get-credentials prod --region europe-west4",
    ]


def test_gke_pinned_version_on_new_cluster_uses_cluster_version():
    inp, _ = validate_gke({"cluster_name": "dev", "location": "us-east1", "version": "1.33"})
    create = gke_argv(inp)[0]
    assert create[create.index("--cluster-version") + 1] == "1.33"
    assert "--release-channel" not in create
    assert "--node-version" not in create


def test_gke_notes():
    zonal = GkeGuideInput(cluster_name="dev", location="us-central1-a")
    regional = GkeGuideInput(cluster_name="dev", location="us-central1", needs_shiftfs=True, version="1.33")
    assert any(GKE_IMAGE_TYPE in note for note in gke_notes(zonal))
    assert any("regular release channel" in note for note in gke_notes(zonal))
    assert not any("per zone" in note for note in gke_notes(zonal))
    assert any("2 nodes in each of the region's zones" in note for note in gke_notes(regional))
    assert any("--no-shielded-secure-boot" in note for note in gke_notes(regional))
    assert not any("release channel" in note for note in gke_notes(regional))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("cluster_name", "", "required"),
        ("cluster_name", "Dev", "lowercase"),
        ("cluster_name", "1dev", "starting with a letter"),
        ("cluster_name", "dev-", "not ending with a hyphen"),
        ("cluster_name", "a" * 41, "1 to 40"),
        ("location", "us-central", "region such as us-central1"),
        ("location", "us-central1-ab", "zone such as us-central1-a"),
        ("location", "US-CENTRAL1", "region"),
        ("version", "2.0", "1.33.5-gke.1080000"),
        ("version", "1.33.5-eks.1", "GKE version"),
        ("machine_type", "e2 standard", "machine type"),
        ("num_nodes", "0", "from 1 to 1000"),
        ("num_nodes", "1001", "from 1 to 1000"),
        ("num_nodes", "two", "whole number"),
        ("num_nodes", "-1", "whole number"),
        ("num_nodes", "1.5", "whole number"),
        ("project", "abc", "6 to 30"),
        ("pool_name", "Pool", "lowercase"),
        ("existing_cluster", "maybe", "yes or no"),
        ("node_labels", "not a label", "key=value"),
        ("node_labels", "a=$(reboot)", "the value"),
    ],
)
def test_gke_field_errors(field, value, words):
    data = {"cluster_name": "dev", "location": "us-central1", field: value}
    inp, errors = validate_gke(data)
    assert inp is None
    assert list(errors) == [field]
    assert words in errors[field]


@pytest.mark.parametrize(
    "location", ["us-central1", "us-central1-a", "europe-west4-c", "northamerica-northeast1", "me-central2-b"]
)
def test_gke_locations(location):
    inp, errors = validate_gke({"cluster_name": "dev", "location": location})
    assert errors == {}
    assert inp.is_zone is (location.count("-") == 2)


@pytest.mark.parametrize(
    "machine_type", ["e2-standard-4", "n2d-highmem-8", "custom-4-16384", "c3-standard-4-lssd"]
)
def test_gke_machine_types(machine_type):
    assert validate_gke({"cluster_name": "d", "location": "us-east1", "machine_type": machine_type})[1] == {}


def test_gke_missing_checkboxes_mean_no_and_empty_fields_take_defaults():
    inp, errors = validate_gke(
        {"cluster_name": "dev", "location": "us-east1", "version": "", "pool_name": " "}
    )
    assert errors == {}
    assert inp == GkeGuideInput(cluster_name="dev", location="us-east1")
    assert inp.node_labels == CVM_NODE_LABELS


def test_validate_gke_non_mapping():
    inp, errors = validate_gke(None)  # type: ignore[arg-type]
    assert inp is None
    assert set(errors) == {"cluster_name", "location"}


def _flags(argv, start):
    """Flag → value of a generated command from ``start`` on (values only sit after their flag)."""
    flags = {}
    i = start
    while i < len(argv):
        if argv[i] == "--no-shielded-secure-boot":
            flags[argv[i]] = True
            i += 1
        else:
            flags[argv[i]] = argv[i + 1]
            i += 2
    return flags


free_text = st.text(min_size=1, max_size=30)
# Label keys cannot hold "=" or ",", nor values ","; validation guarantees it, so the strategy does too.
label_maps = st.dictionaries(
    free_text.filter(lambda s: "=" not in s and "," not in s),
    st.text(max_size=10).filter(lambda s: "," not in s),
)


@given(
    name=free_text,
    location=free_text,
    pool=free_text,
    version=st.text(max_size=20),
    machine=free_text,
    nodes=st.integers(1, 1000),
    project=st.text(max_size=20),
    existing=st.booleans(),
    shiftfs=st.booleans(),
    labels=label_maps,
)
def test_gke_arbitrary_values_never_break_out(
    name, location, pool, version, machine, nodes, project, existing, shiftfs, labels
):
    inp = GkeGuideInput(name, location, pool, version, machine, nodes, project, existing, shiftfs, labels)
    commands = gke_commands(inp)
    create = shlex.split(commands[0])
    assert create == gke_argv(inp)[0]
    if existing:
        assert create[:5] == ["gcloud", "container", "node-pools", "create", pool]
        flags = _flags(create, 5)
        assert flags["--cluster"] == name
        assert flags.get("--node-version") == (version or None)
    else:
        assert create[:5] == ["gcloud", "container", "clusters", "create", name]
        flags = _flags(create, 5)
        assert flags.get("--cluster-version") == (version or None)
    assert flags["--zone" if inp.is_zone else "--region"] == location
    assert flags.get("--project") == (project or None)
    assert flags["--machine-type"] == machine
    assert flags["--num-nodes"] == str(nodes)
    assert flags["--image-type"] == GKE_IMAGE_TYPE
    assert ("--no-shielded-secure-boot" in flags) is shiftfs
    if labels:
        assert dict(pair.split("=", 1) for pair in flags["--node-labels"].split(",")) == labels
    credentials = shlex.split(commands[1])
    assert credentials[4] == name


@given(st.dictionaries(st.sampled_from(["cluster_name", "location", "version", "machine_type"]), free_text))
def test_validated_gke_values_appear_verbatim(data):
    data = {"cluster_name": "dev", "location": "us-east1", **data}
    inp, errors = validate_gke(data)
    if inp is None:
        assert errors
        return
    create = shlex.split(gke_commands(inp)[0])
    assert create[4] == data["cluster_name"].strip()
    flags = _flags(create, 5)
    assert flags["--zone" if inp.is_zone else "--region"] == data["location"].strip()


shell_text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=25
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=shell_text, location=shell_text, machine=shell_text, version=shell_text)
def test_bash_reads_the_multiline_command_as_the_same_arguments(name, location, machine, version):
    inp = GkeGuideInput(cluster_name=name, location=location, machine_type=machine, version=version)
    argv = gke_argv(inp)[0]
    shown = display_command(argv)
    assert shown.startswith("gcloud ")
    script = "printf '%s\\0'" + shown[len("gcloud") :]
    result = subprocess.run(["bash", "-c", script], capture_output=True, check=True)
    assert result.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1] == argv[1:]


def test_display_command_puts_each_flag_on_its_own_line():
    shown = display_command(["gcloud", "container", "clusters", "create", "x y", "--zone", "us-east1-b"])
    assert shown == "gcloud container clusters create 'x y' \\\n    --zone us-east1-b"


# --- EKS ---


def test_eks_config_defaults():
    inp, errors = validate_eks({"cluster_name": "dev", "region": "eu-west-1"})
    assert errors == {}
    assert eks_config(inp) == {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {"name": "dev", "region": "eu-west-1", "version": EKS_DEFAULT_VERSION},
        "nodeGroups": [
            {
                "name": "cvm-ubuntu",
                "amiFamily": "Ubuntu2404",
                "instanceType": "m6i.xlarge",
                "desiredCapacity": 2,
                "minSize": 1,
                "maxSize": 4,
                "volumeSize": 100,
                "labels": {"coderadmin.dev/cvm": "true"},
            }
        ],
    }
    text = eks_config_yaml(inp)
    assert f"version: '{EKS_DEFAULT_VERSION}'" in text
    assert "coderadmin.dev/cvm: 'true'" in text
    assert eks_commands(inp) == ["eksctl create cluster --config-file coderadmin-cvm-cluster.yaml"]


@pytest.mark.parametrize("text", ["\x85", "a\x85b", "\u2028", "é", "x\r\ny", "yes", "1.30"])
def test_eks_yaml_round_trips_awkward_characters(text):
    inp = EksGuideInput(cluster_name=text, region="eu-west-1", node_labels={text: text})
    assert yaml.safe_load(eks_config_yaml(inp)) == eks_config(inp)


def test_eks_existing_cluster_adds_a_node_group():
    inp, _ = validate_eks(
        {
            "cluster_name": "prod",
            "region": "us-gov-west-1",
            "existing_cluster": "yes",
            "ami_family": "Ubuntu2204",
        }
    )
    assert eks_argv(inp, "my file.yaml") == [
        ["eksctl", "create", "nodegroup", "--config-file", "my file.yaml"]
    ]
    assert eks_commands(inp, "my file.yaml") == ["eksctl create nodegroup --config-file 'my file.yaml'"]
    assert eks_config(inp)["nodeGroups"][0]["amiFamily"] == "Ubuntu2204"


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"region": "europe-west1"}, "region", "eu-west-1"),
        ({"region": "eu-west"}, "region", "AWS region"),
        ({"cluster_name": "-dev"}, "cluster_name", "starting with a letter or digit"),
        ({"cluster_name": "a" * 101}, "cluster_name", "1 to 100"),
        ({"version": "1.33.2"}, "version", "major.minor"),
        ({"version": "v1.33"}, "version", "EKS version"),
        ({"ami_family": "AmazonLinux2"}, "ami_family", "Ubuntu2404, Ubuntu2204"),
        ({"ami_family": "Ubuntu1804"}, "ami_family", "Choose one of"),
        ({"instance_type": "m6i"}, "instance_type", "m6i.xlarge"),
        ({"desired_capacity": "0"}, "desired_capacity", "from 1 to 1000"),
        ({"min_size": "3"}, "min_size", "larger than the desired capacity"),
        ({"max_size": "1"}, "max_size", "smaller than the desired capacity"),
        ({"volume_size": "10"}, "volume_size", "from 20 to 16384"),
        ({"node_group_name": "cvm_pool"}, "node_group_name", "letters, digits and hyphens"),
    ],
)
def test_eks_field_errors(data, field, words):
    inp, errors = validate_eks({"cluster_name": "dev", "region": "eu-west-1", **data})
    assert inp is None
    assert list(errors) == [field]
    assert words in errors[field]


@pytest.mark.parametrize(
    "region", ["eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "il-central-1"]
)
def test_eks_regions(region):
    assert validate_eks({"cluster_name": "dev", "region": region})[1] == {}


@pytest.mark.parametrize(
    "instance_type", ["m6i.xlarge", "c7g.2xlarge", "m5.metal", "u-6tb1.metal", "g5.48xlarge"]
)
def test_eks_instance_types(instance_type):
    assert (
        validate_eks({"cluster_name": "dev", "region": "eu-west-1", "instance_type": instance_type})[1] == {}
    )


yamlish = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["yes", "no", "on", "null", "~", "1.30", "0x1F", "- a", "a: b", "#x", "'", '"', "*a", "&a"]
    ),
)


@given(
    name=yamlish,
    region=yamlish,
    version=yamlish,
    group=yamlish,
    ami=yamlish,
    instance=yamlish,
    sizes=st.tuples(*[st.integers(1, 1000)] * 3),
    labels=st.dictionaries(yamlish, yamlish, max_size=3),
)
def test_eks_yaml_always_parses_and_round_trips(name, region, version, group, ami, instance, sizes, labels):
    inp = EksGuideInput(
        cluster_name=name,
        region=region,
        version=version,
        node_group_name=group,
        ami_family=ami,
        instance_type=instance,
        desired_capacity=sizes[0],
        min_size=sizes[1],
        max_size=sizes[2],
        node_labels=labels,
    )
    parsed = yaml.safe_load(eks_config_yaml(inp))
    assert parsed == eks_config(inp)
    assert parsed["metadata"]["name"] == name
    assert parsed["metadata"]["version"] == version


# --- AKS ---


def test_aks_commands():
    inp, errors = validate_aks({"resource_group": "rg-dev", "cluster_name": "dev", "version": "1.33.2"})
    assert errors == {}
    assert aks_commands(inp) == [
        "az aks nodepool add --resource-group rg-dev --cluster-name dev --name cvmpool --mode User "
        "--os-type Linux --os-sku Ubuntu --node-vm-size Standard_D4s_v5 --node-count 2 "
        "--kubernetes-version 1.33.2 --labels coderadmin.dev/cvm=true",
        "az aks get-credentials --resource-group rg-dev --name dev",
    ]


def test_aks_resource_group_with_parentheses_is_quoted():
    inp, errors = validate_aks(
        {"resource_group": "rg(dev)", "cluster_name": "dev", "node_labels": "a=b\nc=d"}
    )
    assert errors == {}
    command = aks_commands(inp)[0]
    assert "--resource-group 'rg(dev)'" in command
    argv = shlex.split(command)
    assert argv[argv.index("--labels") + 1 :] == ["a=b", "c=d"]


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"resource_group": ""}, "resource_group", "required"),
        ({"resource_group": "rg."}, "resource_group", "not ending with a period"),
        ({"resource_group": "r" * 91}, "resource_group", "1 to 90"),
        ({"cluster_name": "dev!"}, "cluster_name", "1 to 63"),
        ({"pool_name": "cvm-pool"}, "pool_name", "1 to 12 lowercase"),
        ({"pool_name": "averylongpool1"}, "pool_name", "1 to 12"),
        ({"vm_size": "D4s_v5"}, "vm_size", "Standard_D4s_v5"),
        ({"node_count": "5000"}, "node_count", "from 1 to 1000"),
        ({"version": "1.33-preview"}, "version", "1.33.2"),
    ],
)
def test_aks_field_errors(data, field, words):
    inp, errors = validate_aks({"resource_group": "rg", "cluster_name": "dev", **data})
    assert inp is None
    assert list(errors) == [field]
    assert words in errors[field]


@given(group=free_text, name=free_text, pool=free_text, size=free_text, version=st.text(max_size=10))
def test_aks_arbitrary_values_never_break_out(group, name, pool, size, version):
    inp = AksGuideInput(group, name, pool, size, 3, version, {})
    add = shlex.split(aks_commands(inp)[0])
    assert add == aks_argv(inp)[0]
    flags = dict(zip(add[4::2], add[5::2], strict=True))
    assert flags["--resource-group"] == group
    assert flags["--cluster-name"] == name
    assert flags["--name"] == pool
    assert flags["--node-vm-size"] == size
    assert flags.get("--kubernetes-version") == (version or None)


# --- sysbox on your own nodes ---


def test_sysbox_steps():
    names, errors = validate_sysbox(
        {"node_names": "node-1, node-2\nip-10-0-1-5.eu-west-1.compute.internal node-1"}
    )
    assert errors == {}
    assert names == ["node-1", "node-2", "ip-10-0-1-5.eu-west-1.compute.internal"]
    assert sysbox_steps(names) == [
        "kubectl label nodes node-1 node-2 ip-10-0-1-5.eu-west-1.compute.internal sysbox-install=yes",
        f"kubectl apply -f {SYSBOX_INSTALL_MANIFEST}",
        "kubectl get nodes -l sysbox-runtime=running",
        "kubectl get runtimeclass sysbox-runc",
    ]


def test_sysbox_manifest_is_the_nestybox_installer():
    assert SYSBOX_INSTALL_MANIFEST == (
        "https://raw.githubusercontent.com/nestybox/sysbox/master/sysbox-k8s-manifests/sysbox-install.yaml"
    )


def test_sysbox_labels_and_notes_explain_themselves():
    assert set(SYSBOX_LABELS) == {"sysbox-install=yes", "sysbox-runtime=running"}
    assert "RuntimeClass" in SYSBOX_LABELS["sysbox-runtime=running"]
    assert any("drain" in note for note in SYSBOX_NOTES)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "at least one node name"),
        ("Node_1", "Not a node name: 'Node_1'"),
        ("ok $(reboot)", "Not a node name: '$(reboot)'"),
        (" ".join(f"n{i}" for i in range(101)), "at most 100"),
    ],
)
def test_sysbox_node_name_errors(text, words):
    names, errors = validate_sysbox({"node_names": text})
    assert names is None
    assert words in errors["node_names"]


def test_sysbox_argv_needs_nodes():
    with pytest.raises(ValueError, match="at least one node"):
        sysbox_argv([])


@given(st.lists(free_text, min_size=1, max_size=5))
def test_sysbox_arbitrary_names_never_break_out(names):
    label = shlex.split(sysbox_steps(names)[0])
    assert label == ["kubectl", "label", "nodes", *names, "sysbox-install=yes"]


# --- image help box ---

_INSTRUCTION = re.compile(r"(FROM|RUN|ENV|ARG|USER|WORKDIR|COPY|CMD|ENTRYPOINT) ")


@pytest.mark.parametrize("dockerfile", [IMAGE_DOCKERFILE_SYSTEMD, IMAGE_DOCKERFILE_DOCKER])
def test_dockerfiles_are_well_formed(dockerfile):
    lines = dockerfile.splitlines()
    assert lines[0].startswith("FROM ubuntu:")
    continued = False
    for line in lines:
        if not continued and not line.startswith("#"):
            assert _INSTRUCTION.match(line), line
        continued = line.endswith("\\")
    assert not continued
    assert "ln -sf /lib/systemd/systemd /sbin/init" in dockerfile
    assert "useradd" in dockerfile


def test_docker_dockerfile_enables_the_service():
    assert "docker.io" in IMAGE_DOCKERFILE_DOCKER
    assert "RUN systemctl enable docker" in IMAGE_DOCKERFILE_DOCKER
    assert "docker" not in IMAGE_DOCKERFILE_SYSTEMD
