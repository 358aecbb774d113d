import pytest
from hypothesis import given
from hypothesis import strategies as st

from infrastructure.nodeinfo import (
    KernelVersion,
    NodeVerdict,
    OsInfo,
    Status,
    classify_os_image,
    container_runtime,
    cvm_node_verdict,
    parse_k8s_version,
    parse_kernel_version,
    supports_host_users,
)

# nodeInfo.kernelVersion strings as real kubelets report them.
KERNELS = [
    ("5.15.0-1049-gke", (5, 15, 0), "gke"),
    ("6.8.0-1015-aws", (6, 8, 0), "aws"),
    ("5.4.0-1103-azure", (5, 4, 0), "azure"),
    ("6.5.0-1025-oem", (6, 5, 0), "oem"),
    ("5.15.0-1073-azure", (5, 15, 0), "azure"),
    ("6.8.0-1019-gcp", (6, 8, 0), "gcp"),
    ("5.15.0-122-generic", (5, 15, 0), "generic"),
    ("6.1.100+", (6, 1, 100), ""),
    ("5.15.154+", (5, 15, 154), ""),
    ("5.10.225-213.878.amzn2.x86_64", (5, 10, 225), "amzn2"),
    ("4.14.350-266.564.amzn2.x86_64", (4, 14, 350), "amzn2"),
    ("6.1.109-118.189.amzn2023.x86_64", (6, 1, 109), "amzn2023"),
    ("6.1.112-122.189.amzn2023.aarch64", (6, 1, 112), "amzn2023"),
    ("6.1.106", (6, 1, 106), ""),
    ("5.15.167.1-1.cm2", (5, 15, 167), "cm2"),
    ("6.6.54-flatcar", (6, 6, 54), "flatcar"),
    ("6.1.0-25-amd64", (6, 1, 0), "amd64"),
    ("6.1.0-26-cloud-arm64", (6, 1, 0), "arm64"),
    ("5.14.0-427.37.1.el9_4.x86_64", (5, 14, 0), "el9_4"),
    ("4.18.0-553.el8_10.x86_64", (4, 18, 0), "el8_10"),
    ("3.10.0-1160.el7.x86_64", (3, 10, 0), "el7"),
    ("5.14.0-284.88.1.el9_2.x86_64", (5, 14, 0), "el9_2"),
    ("10.0.20348.2700", (10, 0, 20348), "windows"),
    ("10.0.17763.6293", (10, 0, 17763), "windows"),
    ("6.4.0-150600.23.25-default", (6, 4, 0), "default"),
    ("6.6.43-talos", (6, 6, 43), "talos"),
    ("5.15.153.1-microsoft-standard-WSL2", (5, 15, 153), "wsl2"),
    ("6.10.14-linuxkit", (6, 10, 14), "linuxkit"),
    ("  5.4.0-1103-azure\n", (5, 4, 0), "azure"),
    ("v5.4", (5, 4, 0), ""),
]

GARBAGE_KERNELS = [
    "",
    "   ",
    "garbage",
    "5",
    "linux-5.15",
    "5.x.1",
    "unknown",
    "\u0661.\u0662.\u0663",
    "99999999999.1",
]

# nodeInfo.osImage strings as real kubelets report them.
OS_IMAGES = [
    ("Ubuntu 22.04.4 LTS", "ubuntu", "22.04.4"),
    ("Ubuntu 24.04.1 LTS", "ubuntu", "24.04.1"),
    ("Ubuntu 20.04.6 LTS", "ubuntu", "20.04.6"),
    ("Container-Optimized OS from Google", "cos", ""),
    ("Amazon Linux 2", "amazon-linux", "2"),
    ("Amazon Linux 2023.5.20240916", "amazon-linux", "2023.5.20240916"),
    ("Bottlerocket OS 1.22.0 (aws-k8s-1.30)", "bottlerocket", "1.22.0"),
    ("Flatcar Container Linux by Kinvolk 3975.2.1 (Oklo)", "flatcar", "3975.2.1"),
    ("Debian GNU/Linux 12 (bookworm)", "debian", "12"),
    ("Red Hat Enterprise Linux CoreOS 417.94.202410090854-0", "rhcos", "417.94.202410090854"),
    ("Red Hat Enterprise Linux 9.4 (Plow)", "rhel", "9.4"),
    ("CentOS Linux 7 (Core)", "centos", "7"),
    ("CentOS Stream 9", "centos", "9"),
    ("Rocky Linux 9.4 (Blue Onyx)", "rocky", "9.4"),
    ("AlmaLinux 9.4 (Seafoam Ocelot)", "alma", "9.4"),
    ("Oracle Linux Server 8.10", "oracle-linux", "8.10"),
    ("Windows Server 2022 Datacenter", "windows", "2022"),
    ("CBL-Mariner/Linux", "azure-linux", ""),
    ("Microsoft Azure Linux 3.0", "azure-linux", "3.0"),
    ("Talos (v1.8.0)", "talos", "1.8.0"),
    ("openSUSE Leap 15.6", "opensuse", "15.6"),
    ("SUSE Linux Enterprise Server 15 SP5", "sles", "15 SP5"),
    ("Fedora CoreOS 40.20240906.3.0", "fedora-coreos", "40.20240906.3.0"),
    ("Fedora Linux 40 (Cloud Edition)", "fedora", "40"),
    ("Alpine Linux v3.20", "alpine", "3.20"),
    ("Buildroot 2023.02.9", "buildroot", "2023.02.9"),
    ("VMware Photon OS/Linux", "photon", ""),
    ("Docker Desktop", "unknown", ""),
    ("", "unknown", ""),
]


@pytest.mark.parametrize(("raw", "numbers", "flavour"), KERNELS)
def test_parse_kernel_version_real_world(raw, numbers, flavour):
    kernel = parse_kernel_version(raw)
    assert kernel is not None
    assert kernel.version == numbers
    assert kernel.flavour == flavour
    assert kernel.raw == raw.strip()


@pytest.mark.parametrize("raw", GARBAGE_KERNELS)
def test_parse_kernel_version_garbage_is_none(raw):
    assert parse_kernel_version(raw) is None


def test_parse_kernel_version_non_string_is_none():
    assert parse_kernel_version(None) is None  # type: ignore[arg-type]
    assert parse_kernel_version(5.4) is None  # type: ignore[arg-type]


def test_kernel_at_least_and_str():
    kernel = KernelVersion(5, 4, 0, "azure", "5.4.0-1103-azure")
    assert kernel.at_least(5, 4)
    assert kernel.at_least(4, 19)
    assert not kernel.at_least(5, 5)
    assert str(kernel) == "5.4.0"


@pytest.mark.parametrize(("image", "distro", "version"), OS_IMAGES)
def test_classify_os_image_real_world(image, distro, version):
    info = classify_os_image(image)
    assert (info.distro, info.version) == (distro, version)
    assert info.is_ubuntu == (distro == "ubuntu")
    assert info.pretty == (image or "unknown OS")


def test_classify_os_image_trusts_operating_system_windows():
    info = classify_os_image("Microsoft Windows", operating_system="windows")
    assert info == OsInfo(distro="windows", version="", pretty="Microsoft Windows")


def test_table_is_big_enough():
    assert len(KERNELS) + len(OS_IMAGES) >= 50


def _node(kernel: str, image: str, operating_system: str = "linux") -> dict:
    return {"kernelVersion": kernel, "osImage": image, "operatingSystem": operating_system}


def _statuses(verdict: NodeVerdict) -> dict[str, Status]:
    return {f.check: f.status for f in verdict.findings}


# (kernelVersion, osImage, operatingSystem) → (overall status, status of each check)
VERDICTS = [
    (
        "6.8.0-1015-aws",
        "Ubuntu 24.04.1 LTS",
        "linux",
        Status.PASS,
        {"linux": "pass", "kernel": "pass", "os": "pass", "idmap": "info"},
    ),
    (
        "5.15.0-1049-gke",
        "Ubuntu 22.04.4 LTS",
        "linux",
        Status.PASS,
        {"linux": "pass", "kernel": "pass", "os": "pass", "idmap": "info"},
    ),
    (
        "5.4.0-1103-azure",
        "Ubuntu 20.04.6 LTS",
        "linux",
        Status.PASS,
        {"linux": "pass", "kernel": "pass", "os": "pass", "idmap": "info"},
    ),
    (
        "6.1.100+",
        "Container-Optimized OS from Google",
        "linux",
        Status.FAIL,
        {"linux": "pass", "kernel": "pass", "os": "fail", "idmap": "info"},
    ),
    (
        "4.14.350-266.564.amzn2.x86_64",
        "Amazon Linux 2",
        "linux",
        Status.FAIL,
        {"linux": "pass", "kernel": "fail", "os": "fail"},
    ),
    (
        "4.18.0-553.el8_10.x86_64",
        "Red Hat Enterprise Linux 8.10 (Ootpa)",
        "linux",
        Status.FAIL,
        {"linux": "pass", "kernel": "fail", "os": "fail"},
    ),
    ("10.0.20348.2700", "Windows Server 2022 Datacenter", "windows", Status.FAIL, {"linux": "fail"}),
    (
        "garbage",
        "Ubuntu 22.04.4 LTS",
        "linux",
        Status.FAIL,
        {"linux": "pass", "kernel": "fail", "os": "pass"},
    ),
    ("5.15.0-1049-gke", "Ubuntu 22.04.4 LTS", "plan9", Status.FAIL, {"linux": "fail"}),
]


@pytest.mark.parametrize(("kernel", "image", "system", "status", "checks"), VERDICTS)
def test_cvm_node_verdict(kernel, image, system, status, checks):
    verdict = cvm_node_verdict(_node(kernel, image, system))
    assert verdict.status == status
    assert _statuses(verdict) == checks
    assert verdict.reasons
    assert all(r.strip() for r in verdict.reasons)


def test_verdict_reasons_are_the_deciding_ones():
    verdict = cvm_node_verdict(_node("6.1.100+", "Container-Optimized OS from Google"))
    assert len(verdict.reasons) == 1
    assert "Container-Optimized OS" in verdict.reasons[0]
    assert "UBUNTU_CONTAINERD" in verdict.reasons[0]
    passing = cvm_node_verdict(_node("6.8.0-1015-aws", "Ubuntu 24.04.1 LTS"))
    assert passing.reasons == ("The node runs Linux.", "Kernel 6.8.0 is 5.4 or newer.", passing.reasons[2])
    assert "Ubuntu 24.04.1 LTS" in passing.reasons[2]


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("Container-Optimized OS from Google", "Container-Optimized OS"),
        ("Amazon Linux 2", "Ubuntu2204"),
        ("Bottlerocket OS 1.22.0 (aws-k8s-1.30)", "SELinux"),
        ("Red Hat Enterprise Linux CoreOS 417.94.202410090854-0", "OpenShift"),
        ("Rocky Linux 9.4 (Blue Onyx)", "SELinux"),
        ("CBL-Mariner/Linux", "--os-sku Ubuntu"),
        ("Talos (v1.8.0)", "immutable"),
        ("Debian GNU/Linux 12 (bookworm)", "Ubuntu only"),
        ("Gentoo", "Ubuntu node pool"),
    ],
)
def test_unsupported_os_reasons_name_the_problem(image, words):
    verdict = cvm_node_verdict(_node("6.8.0", image))
    os_finding = next(f for f in verdict.findings if f.check == "os")
    assert os_finding.status == Status.FAIL
    assert words in os_finding.reason
    assert repr(image) in os_finding.reason


def test_kernel_too_old_says_what_to_do():
    verdict = cvm_node_verdict(_node("3.10.0-1160.el7.x86_64", "Ubuntu 18.04 LTS"))
    kernel = next(f for f in verdict.findings if f.check == "kernel")
    assert kernel.reason.startswith("Kernel 3.10.0 is older than 5.4")
    assert "Upgrade" in kernel.reason


def test_unparsable_kernel_reason_shows_the_value():
    verdict = cvm_node_verdict(_node("", "Ubuntu 22.04.4 LTS"))
    kernel = next(f for f in verdict.findings if f.check == "kernel")
    assert "'(empty)'" in kernel.reason
    assert "uname -r" in kernel.reason


def test_windows_build_reported_on_a_linux_node_is_not_a_kernel():
    verdict = cvm_node_verdict({"kernelVersion": "10.0.20348.2700", "osImage": "Ubuntu 22.04.4 LTS"})
    assert _statuses(verdict)["kernel"] == Status.FAIL


def test_windows_os_image_without_operating_system_fails_as_windows():
    verdict = cvm_node_verdict(
        {"kernelVersion": "10.0.20348.2700", "osImage": "Windows Server 2019 Datacenter"}
    )
    assert _statuses(verdict) == {"linux": Status.FAIL}
    assert "Windows" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("kernel", "image", "words"),
    [
        ("5.4.0-1103-azure", "Ubuntu 20.04.6 LTS", "needs the shiftfs module"),
        (
            "5.10.225-213.878.amzn2.x86_64",
            "Amazon Linux 2",
            "shiftfs exists only on Ubuntu, Debian and Flatcar",
        ),
        ("5.15.0-1049-gke", "Ubuntu 22.04.4 LTS", "shiftfs is optional"),
        ("5.18.19", "Ubuntu 22.04.4 LTS", "shiftfs is optional"),
        ("5.19.0-50-generic", "Ubuntu 22.04.4 LTS", "shiftfs is not needed"),
        ("6.8.0-1015-aws", "Ubuntu 24.04.1 LTS", "ID-mapped mounts"),
    ],
)
def test_idmap_note_by_kernel_range(kernel, image, words):
    verdict = cvm_node_verdict(_node(kernel, image))
    note = next(f for f in verdict.findings if f.check == "idmap")
    assert note.status == Status.INFO
    assert words in note.reason


def test_shiftfs_note_on_ubuntu_does_not_claim_it_is_missing():
    verdict = cvm_node_verdict(_node("5.4.0-1103-azure", "Ubuntu 20.04.6 LTS"))
    note = next(f for f in verdict.findings if f.check == "idmap")
    assert "exists only" not in note.reason


def test_verdict_reads_snake_case_from_python_client():
    verdict = cvm_node_verdict(
        {"kernel_version": "6.8.0-1015-aws", "os_image": "Ubuntu 24.04.1 LTS", "operating_system": "linux"}
    )
    assert verdict.status == Status.PASS
    assert verdict.kernel is not None
    assert verdict.kernel.version == (6, 8, 0)
    assert verdict.os.is_ubuntu


def test_verdict_of_non_mapping_fails_cleanly():
    verdict = cvm_node_verdict(None)  # type: ignore[arg-type]
    assert verdict.status == Status.FAIL


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("containerd://1.7.22", ("containerd", "1.7.22")),
        ("containerd://2.0.5", ("containerd", "2.0.5")),
        ("containerd://1.6.28-1", ("containerd", "1.6.28-1")),
        ("cri-o://1.30.4", ("cri-o", "1.30.4")),
        ("docker://24.0.7", ("docker", "24.0.7")),
        ("CRI-O://1.31.0", ("cri-o", "1.31.0")),
        ("containerd", ("containerd", "")),
        ("", ("", "")),
    ],
)
def test_container_runtime(raw, expected):
    assert container_runtime(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("v1.31.2-gke.1000", (1, 31, 2)),
        ("v1.30.4-eks-a737599", (1, 30, 4)),
        ("v1.29.7+k3s1", (1, 29, 7)),
        ("v1.33.5", (1, 33, 5)),
        ("1.30", (1, 30, 0)),
        ("v1.28.9-gke.1000000", (1, 28, 9)),
        ("v1.32.0-alpha.3", (1, 32, 0)),
        ("", None),
        ("latest", None),
        ("v1", None),
    ],
)
def test_parse_k8s_version(raw, expected):
    assert parse_k8s_version(raw) == expected


@pytest.mark.parametrize(
    ("kubelet", "runtime", "ok", "words"),
    [
        ("v1.30.4-eks-a737599", "containerd://2.0.5", True, "hostUsers: false"),
        ("v1.33.1", "containerd://2.1.0", True, "hostUsers: false"),
        ("v1.30.0", "containerd://2.0.4", False, "older than 2.0.5"),
        ("v1.31.2-gke.1000", "containerd://1.7.22", False, "CRI-O"),
        ("v1.29.7+k3s1", "containerd://2.0.5", False, "Kubernetes 1.30"),
        ("", "containerd://2.0.5", False, "unknown version"),
        ("v1.29.3", "cri-o://1.29.3", True, "io.kubernetes.cri-o.userns-mode"),
        ("v1.31.0", "docker://24.0.7", False, "docker"),
        ("v1.31.0", "", False, "unknown runtime"),
        ("v1.31.0", "containerd://", False, "(unknown version)"),
    ],
)
def test_supports_host_users(kubelet, runtime, ok, words):
    supported, reason = supports_host_users(kubelet, runtime)
    assert supported is ok
    assert words in reason


@given(st.text(max_size=600))
def test_parsers_never_raise(text):
    kernel = parse_kernel_version(text)
    assert kernel is None or kernel.major >= 0
    assert isinstance(classify_os_image(text, text), OsInfo)
    assert isinstance(container_runtime(text), tuple)
    version = parse_k8s_version(text)
    assert version is None or len(version) == 3
    supported, reason = supports_host_users(text, text)
    assert isinstance(supported, bool)
    assert reason


@given(
    st.dictionaries(
        st.sampled_from(["kernelVersion", "osImage", "operatingSystem", "kernel_version", "os_image"]),
        st.one_of(st.text(max_size=80), st.none(), st.integers()),
    )
)
def test_cvm_node_verdict_never_raises(node_info):
    verdict = cvm_node_verdict(node_info)
    assert verdict.status in (Status.PASS, Status.FAIL)
    assert verdict.reasons


@given(
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 999),
    st.one_of(st.just(""), st.from_regex(r"\A[-+][-.a-z0-9_]{0,30}\Z")),
)
def test_kernel_numbers_round_trip(major, minor, patch, suffix):
    kernel = parse_kernel_version(f"{major}.{minor}.{patch}{suffix}")
    assert kernel is not None
    assert kernel.version == (major, minor, patch)
