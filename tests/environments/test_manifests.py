import base64
import itertools
import json

import kubernetes_validate
import pytest

from coderadmin.models import User
from environments import manifests
from environments.models import Environment, Image
from infrastructure import labels
from infrastructure.models import InfrastructureSettings
from infrastructure.supervisor import contract
from tests.environments.factories import EnvironmentFactory, ImageFactory

PASSWORD = "very-secret-registry-token"


def make_image(private=False, run_as_uid=None, command=None, repository="registry.example.com:5000/team/dev"):
    image = Image(repository=repository, username="coder", run_as_uid=run_as_uid, command=command)
    if private:
        image.registry_username = "robot"
        image.registry_password = PASSWORD
    return image


def make_infra(**overrides):
    infra = InfrastructureSettings(**overrides)
    return infra


def make_env(image, infra, cvm=False, backend="", gpu=0, pk=42):
    owner = User(username="alice", handle="alice")
    env = Environment(
        pk=pk,
        owner=owner,
        name="web",
        image=image,
        tag="1.0",
        cpu_millicores=1500,
        memory_mib=3072,
        disk_gib=25,
        gpu_count=gpu,
        cvm=cvm,
        cvm_backend=backend,
    )
    env.assign_kubernetes_names(infra)
    return env


def container(pod, name):
    (match,) = [c for c in pod["spec"]["containers"] if c["name"] == name]
    return match


def env_vars(pod_container):
    return {item["name"]: item for item in pod_container["env"]}


# --- every pod -------------------------------------------------------------------------------


def all_variants():
    """Every shape of object the product can produce, with a readable id."""
    scheduling = {
        "cvm_node_selector": {"pool": "cvm"},
        "cvm_tolerations": [{"key": "cvm", "operator": "Exists"}],
    }
    for private, uid, command, storage_class, sched in itertools.product(
        [False, True], [None, 1000], [None, ["/usr/bin/code-server"]], ["", "fast-ssd"], [False, True]
    ):
        infra = make_infra(storage_class=storage_class, add_tun=True, **(scheduling if sched else {}))
        image = make_image(private=private, run_as_uid=uid, command=command)
        label = f"private={private},uid={uid},command={bool(command)},sc={storage_class or '-'},sched={sched}"
        yield f"standard,{label}", manifests.environment_objects(make_env(image, infra, gpu=0), image, infra)
        yield (
            f"standard-gpu,{label}",
            manifests.environment_objects(make_env(image, infra, gpu=2), image, infra),
        )
        env = make_env(image, infra, cvm=True, backend="supervisor")
        yield f"supervisor,{label}", manifests.environment_objects(env, image, infra)
        for runtime in (manifests.NODE_RUNTIME_CONTAINERD, manifests.NODE_RUNTIME_CRIO):
            env = make_env(image, infra, cvm=True, backend="runtimeclass")
            yield f"runtimeclass-{runtime},{label}", manifests.environment_objects(env, image, infra, runtime)


VARIANTS = dict(all_variants())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_manifest_validates_strictly_on_kubernetes_1_30_and_1_37(variant, validate_manifest):
    objects = VARIANTS[variant]
    for obj in objects:
        validate_manifest(obj)
    secrets = [obj for obj in objects if obj["kind"] == "Secret"]
    (pod,) = [obj for obj in objects if obj["kind"] == "Pod"]
    for secret in secrets:
        owned = {
            **secret,
            "metadata": {
                **secret["metadata"],
                "ownerReferences": [
                    manifests.secret_owner_reference({"metadata": {**pod["metadata"], "uid": "u-1"}})
                ],
            },
        }
        validate_manifest(owned)


def test_the_validation_fixture_can_fail(validate_manifest):
    pod = manifests.standard_pod(*_standard())
    pod["spec"]["containers"][0]["privilegd"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_manifest(pod)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_carries_labels_and_owner(variant):
    for obj in VARIANTS[variant]:
        metadata = obj["metadata"]
        assert metadata["labels"] == labels.environment_labels(42)
        assert metadata["annotations"][labels.ANNOTATION_OWNER] == "alice"
        assert metadata["annotations"][labels.ANNOTATION_ENVIRONMENT_NAME] == "web"
        assert metadata["namespace"] == "coderadmin-environments"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_pod_is_locked_down_and_privileged_only_as_cvm_supervisor(variant):
    (pod,) = [obj for obj in VARIANTS[variant] if obj["kind"] == "Pod"]
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["hostname"] == "web"
    for item in spec["containers"]:
        privileged = item.get("securityContext", {}).get("privileged", False)
        assert privileged is (
            item["name"] == contract.SUPERVISOR_CONTAINER_NAME and variant.startswith("supervisor")
        )
        for requirement in ("requests", "limits"):
            assert item["resources"][requirement]["cpu"] == "1500m"
            assert item["resources"][requirement]["memory"] == "3072Mi"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_plain_credentials_in_any_pod(variant):
    (pod,) = [obj for obj in VARIANTS[variant] if obj["kind"] == "Pod"]
    assert PASSWORD not in json.dumps(pod)
    encoded = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
    assert encoded not in json.dumps(pod)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gpus_only_on_standard_pods(variant):
    (pod,) = [obj for obj in VARIANTS[variant] if obj["kind"] == "Pod"]
    has_gpu = any(manifests.GPU_RESOURCE in c["resources"]["limits"] for c in pod["spec"]["containers"])
    assert has_gpu is variant.startswith("standard-gpu")


def test_cvm_pods_never_get_gpus_even_if_the_row_asks():
    infra, image = make_infra(), make_image()
    for backend in ("supervisor", "runtimeclass"):
        pod = manifests.pod(make_env(image, infra, cvm=True, backend=backend, gpu=4), image, infra)
        assert all(manifests.GPU_RESOURCE not in c["resources"]["limits"] for c in pod["spec"]["containers"])
        assert "tolerations" not in pod["spec"]


# --- supervising-container backend ---------------------------------------------------------------


def _supervisor(private=True, **infra_overrides):
    infra = make_infra(**infra_overrides)
    image = make_image(private=private)
    env = make_env(image, infra, cvm=True, backend="supervisor")
    return manifests.pod(env, image, infra), env, image, infra


def test_supervisor_pod_structure():
    pod, env, *_ = _supervisor(
        add_tun=True,
        add_fuse=False,
        inner_bridge_cidr="172.29.0.1/24",
        cvm_termination_grace_seconds=120,
        cvm_node_selector={"pool": "cvm"},
        cvm_tolerations=[{"key": "cvm", "operator": "Exists", "effect": "NoSchedule"}],
        supervisor_image="ghcr.io/coderadmin/coderadmin-supervisor:9.9.9",
    )
    spec = pod["spec"]
    assert pod["metadata"]["name"] == env.pod_name == "alice-web"
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 120
    assert spec["nodeSelector"] == {"pool": "cvm"}
    assert spec["tolerations"] == [{"key": "cvm", "operator": "Exists", "effect": "NoSchedule"}]
    assert "imagePullSecrets" not in spec
    assert "runtimeClassName" not in spec and "hostUsers" not in spec
    (sup,) = spec["containers"]
    assert sup["name"] == contract.SUPERVISOR_CONTAINER_NAME
    assert sup["image"] == "ghcr.io/coderadmin/coderadmin-supervisor:9.9.9"
    assert sup["securityContext"] == {"privileged": True}
    assert sup["readinessProbe"]["exec"]["command"] == list(contract.READINESS_COMMAND)
    assert sup["terminationMessagePath"] == contract.TERMINATION_LOG_PATH

    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[contract.VOLUME_HOST_MODULES]["hostPath"] == {"path": "/lib/modules", "type": "Directory"}
    assert volumes[contract.VOLUME_HOST_USR_SRC]["hostPath"] == {"path": "/usr/src", "type": "Directory"}
    assert volumes[contract.VOLUME_SYSBOX] == {"name": contract.VOLUME_SYSBOX, "emptyDir": {}}
    assert volumes[contract.VOLUME_DATA]["persistentVolumeClaim"] == {"claimName": env.pvc_name}
    assert volumes[contract.VOLUME_REGISTRY_AUTH]["secret"]["secretName"] == env.registry_secret_name
    assert volumes[contract.VOLUME_REGISTRY_AUTH]["secret"]["items"] == [
        {"key": ".dockerconfigjson", "path": contract.REGISTRY_AUTH_FILE}
    ]

    mounts = {m["mountPath"]: m for m in sup["volumeMounts"]}
    assert mounts[contract.HOST_MODULES_PATH]["readOnly"] is True
    assert mounts[contract.HOST_USR_SRC_PATH]["readOnly"] is True
    assert mounts[contract.SYSBOX_DATA_PATH]["name"] == contract.VOLUME_SYSBOX
    assert mounts[contract.REGISTRY_AUTH_PATH]["readOnly"] is True
    sub_paths = {path: m["subPath"] for path, m in mounts.items() if m["name"] == contract.VOLUME_DATA}
    assert sub_paths == {
        contract.OUTER_DOCKER_DATA_PATH: contract.SUBPATH_OUTER_DOCKER,
        contract.HOME_SOURCE_PATH: contract.SUBPATH_HOME,
        contract.INNER_DOCKER_SOURCE_PATH: contract.SUBPATH_INNER_DOCKER,
        contract.INNER_CONTAINERS_SOURCE_PATH: contract.SUBPATH_INNER_CONTAINERS,
    }

    variables = env_vars(sup)
    assert set(contract.REQUIRED_ENV) <= set(variables)
    assert variables[contract.ENV_INNER_IMAGE]["value"] == "registry.example.com:5000/team/dev:1.0"
    assert variables[contract.ENV_INNER_USERNAME]["value"] == "coder"
    assert variables[contract.ENV_INNER_HOSTNAME]["value"] == "web"
    assert variables[contract.ENV_CPU_MILLICORES]["valueFrom"]["resourceFieldRef"] == {
        "containerName": contract.SUPERVISOR_CONTAINER_NAME,
        "resource": "limits.cpu",
        "divisor": "1m",
    }
    assert (
        variables[contract.ENV_MEMORY_BYTES]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.memory"
    )
    assert variables[contract.ENV_MEMORY_BYTES]["valueFrom"]["resourceFieldRef"]["divisor"] == "1"
    assert variables[contract.ENV_ADD_TUN]["value"] == "true"
    assert variables[contract.ENV_ADD_FUSE]["value"] == "false"
    assert variables[contract.ENV_BRIDGE_CIDR]["value"] == "172.29.0.1/24"
    assert variables[contract.ENV_INNER_MOUNTS]["value"].split(",") == [
        f"{contract.HOME_SOURCE_PATH}:/home/coder",
        f"{contract.INNER_DOCKER_SOURCE_PATH}:{contract.INNER_DOCKER_TARGET}",
        f"{contract.INNER_CONTAINERS_SOURCE_PATH}:{contract.INNER_CONTAINERS_TARGET}",
    ]
    assert contract.ENV_INNER_COMMAND not in variables
    assert all(name.startswith(contract.ENV_PREFIX) for name in variables)


def test_supervisor_pod_without_credentials_or_scheduling():
    pod, *_ = _supervisor(private=False)
    spec = pod["spec"]
    assert contract.VOLUME_REGISTRY_AUTH not in {v["name"] for v in spec["volumes"]}
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert spec["terminationGracePeriodSeconds"] == 90


def test_supervisor_passes_the_image_command_as_json():
    infra = make_infra()
    image = make_image(command=["/usr/bin/code-server", "--bind", "0.0.0.0:8080"])
    pod = manifests.pod(make_env(image, infra, cvm=True, backend="supervisor"), image, infra)
    value = env_vars(pod["spec"]["containers"][0])[contract.ENV_INNER_COMMAND]["value"]
    assert json.loads(value) == ["/usr/bin/code-server", "--bind", "0.0.0.0:8080"]


def test_settings_backend_is_used_when_the_environment_has_none_yet():
    infra = make_infra(cvm_backend="runtimeclass")
    image = make_image()
    pod = manifests.pod(make_env(image, infra, cvm=True, backend=""), image, infra)
    assert pod["spec"]["runtimeClassName"] == manifests.RUNTIME_CLASS_NAME
    stored = manifests.pod(make_env(image, infra, cvm=True, backend="supervisor"), image, infra)
    assert stored["spec"]["containers"][0]["name"] == contract.SUPERVISOR_CONTAINER_NAME


def test_unknown_backend_or_runtime_is_an_error():
    infra, image = make_infra(), make_image()
    with pytest.raises(ValueError, match="backend"):
        manifests.pod(make_env(image, infra, cvm=True, backend="vm"), image, infra)
    with pytest.raises(ValueError, match="runtime"):
        manifests.cvm_runtimeclass_pod(make_env(image, infra, cvm=True), image, infra, node_runtime="docker")


# --- RuntimeClass backend ----------------------------------------------------------------------


@pytest.mark.parametrize("runtime", [manifests.NODE_RUNTIME_CONTAINERD, manifests.NODE_RUNTIME_CRIO])
def test_runtimeclass_pod_structure(runtime):
    infra = make_infra(cvm_node_selector={"sysbox-runtime": "running"}, cvm_termination_grace_seconds=95)
    image = make_image(private=True)
    env = make_env(image, infra, cvm=True, backend="runtimeclass")
    pod = manifests.pod(env, image, infra, node_runtime=runtime)
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "sysbox-runc"
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 95
    assert spec["nodeSelector"] == {"sysbox-runtime": "running"}
    assert spec["imagePullSecrets"] == [{"name": env.registry_secret_name}]
    if runtime == manifests.NODE_RUNTIME_CONTAINERD:
        assert spec["hostUsers"] is False
        assert manifests.CRIO_USERNS_ANNOTATION not in pod["metadata"]["annotations"]
    else:
        assert "hostUsers" not in spec
        assert pod["metadata"]["annotations"][manifests.CRIO_USERNS_ANNOTATION] == "auto:size=65536"
    (workspace,) = spec["containers"]
    assert workspace["name"] == contract.ENVIRONMENT_CONTAINER_NAME
    assert workspace["image"] == "registry.example.com:5000/team/dev:1.0"
    assert workspace["command"] == contract.runtimeclass_wrapper_command()
    assert "securityContext" not in workspace
    assert not any("hostPath" in v for v in spec["volumes"])
    assert {m["mountPath"]: m["subPath"] for m in workspace["volumeMounts"]} == {
        "/home/coder": contract.SUBPATH_HOME,
        contract.INNER_DOCKER_TARGET: contract.SUBPATH_INNER_DOCKER,
        contract.INNER_CONTAINERS_TARGET: contract.SUBPATH_INNER_CONTAINERS,
    }


# --- standard pods -------------------------------------------------------------------------------


def _standard(**image_kwargs):
    infra = make_infra()
    image = make_image(**image_kwargs)
    return make_env(image, infra), image, infra


def test_standard_pod_restricted_profile_when_the_image_declares_a_uid():
    pod = manifests.standard_pod(*_standard(run_as_uid=1000))
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (workspace,) = spec["containers"]
    security = workspace["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert security["privileged"] is False


def test_standard_pod_baseline_with_hardening_otherwise():
    pod = manifests.standard_pod(*_standard())
    spec = pod["spec"]
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    security = spec["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert "capabilities" not in security
    assert "runAsNonRoot" not in security


def test_standard_pod_keep_alive_unless_the_image_has_a_command():
    pod = manifests.standard_pod(*_standard())
    assert pod["spec"]["containers"][0]["command"] == list(contract.KEEPALIVE_COMMAND)
    pod = manifests.standard_pod(*_standard(command=["/usr/bin/code-server"]))
    assert pod["spec"]["containers"][0]["command"] == ["/usr/bin/code-server"]


def test_standard_pod_pull_secret_home_and_gpus():
    infra = make_infra(cvm_node_selector={"pool": "cvm"})
    image = make_image(private=True)
    env = make_env(image, infra, gpu=2)
    spec = manifests.pod(env, image, infra)["spec"]
    assert spec["imagePullSecrets"] == [{"name": env.registry_secret_name}]
    assert "nodeSelector" not in spec and "runtimeClassName" not in spec
    (workspace,) = spec["containers"]
    assert workspace["resources"]["limits"][manifests.GPU_RESOURCE] == "2"
    assert manifests.GPU_RESOURCE not in workspace["resources"]["requests"]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert workspace["volumeMounts"] == [{"name": "data", "mountPath": "/home/coder", "subPath": "home"}]
    public = manifests.pod(make_env(make_image(), infra), make_image(), infra)["spec"]
    assert "imagePullSecrets" not in public and "tolerations" not in public


# --- claim, secret, policy ---------------------------------------------------------------------


def test_volume_claim():
    infra, image = make_infra(storage_class="fast-ssd"), make_image()
    env = make_env(image, infra)
    claim = manifests.volume_claim(env, infra)
    assert claim["metadata"]["name"] == env.pvc_name == "alice-web-data"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "25Gi"}},
        "storageClassName": "fast-ssd",
    }
    assert "storageClassName" not in manifests.volume_claim(env, make_infra())["spec"]


def test_registry_secret():
    infra, image = make_infra(), make_image(private=True)
    env = make_env(image, infra)
    secret = manifests.registry_secret(env, image)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["name"] == env.registry_secret_name
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["registry.example.com:5000"]["password"] == PASSWORD
    assert manifests.registry_secret(env, make_image()) is None


def test_network_policy_selects_the_pod_denies_ingress_and_blocks_metadata():
    infra, image = make_infra(), make_image()
    env = make_env(image, infra)
    policy = manifests.network_policy(env)
    pod = manifests.pod(env, image, infra)
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert selector[labels.LABEL_ENVIRONMENT_ID] == "42"
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == []
    blocks = [
        peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer
    ]
    assert {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]} in blocks


def test_environment_objects_are_in_write_order():
    infra, image = make_infra(), make_image(private=True)
    kinds = [o["kind"] for o in manifests.environment_objects(make_env(image, infra), image, infra)]
    assert kinds == ["PersistentVolumeClaim", "Secret", "NetworkPolicy", "Pod"]
    public = make_image()
    kinds = [o["kind"] for o in manifests.environment_objects(make_env(public, infra), public, infra)]
    assert kinds == ["PersistentVolumeClaim", "NetworkPolicy", "Pod"]


def test_unsaved_or_unnamed_environments_are_refused():
    infra, image = make_infra(), make_image()
    unsaved = make_env(image, infra, pk=None)
    with pytest.raises(ValueError, match="saved environment"):
        manifests.volume_claim(unsaved, infra)
    unnamed = make_env(image, infra)
    unnamed.pod_name = ""
    with pytest.raises(ValueError, match="names are assigned"):
        manifests.pod(unnamed, image, infra)


def test_secret_owner_reference_points_at_the_pod():
    ref = manifests.secret_owner_reference({"metadata": {"name": "alice-web", "uid": "1234"}})
    assert ref == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "alice-web",
        "uid": "1234",
        "controller": False,
        "blockOwnerDeletion": False,
    }


@pytest.mark.django_db
def test_manifests_make_no_database_queries(django_assert_num_queries):
    infra = InfrastructureSettings.load()
    env = EnvironmentFactory(cvm=True, cvm_backend="supervisor", image=ImageFactory())
    env.assign_kubernetes_names(infra)
    env.save()
    loaded = Environment.objects.select_related("owner", "image").get(pk=env.pk)
    with django_assert_num_queries(0):
        objects = manifests.environment_objects(loaded, loaded.image, infra)
    assert objects[-1]["metadata"]["labels"][labels.LABEL_ENVIRONMENT_ID] == str(env.pk)
