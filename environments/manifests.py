"""Kubernetes objects of an environment, as plain camelCase dicts.

Pure functions: no I/O and no database queries (pass an environment loaded with its owner, and the
image and infrastructure settings explicitly). The provisioner writes ``environment_objects`` in
order: volume claim and registry secret first, then the network policy and the pod.

Three pod shapes:
- CVM, supervising-container backend: our privileged supervisor runs sysbox and Docker and starts
  the user's image inside; readiness means the inner container is up (the ready marker).
- CVM, RuntimeClass backend: the user's image under ``sysbox-runc`` in a user namespace; nothing
  privileged, no host paths.
- Standard: the user's image, never privileged, restricted or hardened-baseline security.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from environments.references import join_reference
from infrastructure import labels
from infrastructure.models import CvmBackend
from infrastructure.supervisor import contract

if TYPE_CHECKING:
    from environments.models import Environment, Image
    from infrastructure.models import InfrastructureSettings

Manifest = dict[str, Any]

RUNTIME_CLASS_NAME = "sysbox-runc"
NODE_RUNTIME_CONTAINERD = "containerd"
NODE_RUNTIME_CRIO = "cri-o"
CRIO_USERNS_ANNOTATION = "io.kubernetes.cri-o.userns-mode"
CRIO_USERNS_MODE = "auto:size=65536"
DOCKER_CONFIG_SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DOCKER_CONFIG_KEY = ".dockerconfigjson"
GPU_RESOURCE = "nvidia.com/gpu"
METADATA_ADDRESS_V4 = "169.254.169.254/32"
METADATA_ADDRESS_V6 = "fd00:ec2::254/128"  # AWS's IPv6 instance metadata endpoint
READINESS_PERIOD_SECONDS = 2


def _metadata(env: Environment, name: str, annotations: dict[str, str] | None = None) -> Manifest:
    if env.pk is None or not name:
        raise ValueError("manifests need a saved environment whose Kubernetes names are assigned")
    return {
        "name": name,
        "namespace": env.namespace,
        "labels": labels.environment_labels(env.pk),
        "annotations": {
            labels.ANNOTATION_OWNER: env.owner.handle,
            labels.ANNOTATION_ENVIRONMENT_NAME: env.name,
            **(annotations or {}),
        },
    }


def _resources(env: Environment, gpu: bool = False) -> Manifest:
    amounts = {"cpu": f"{env.cpu_millicores}m", "memory": f"{env.memory_mib}Mi"}
    limits = dict(amounts)
    if gpu and env.gpu_count:
        limits[GPU_RESOURCE] = str(env.gpu_count)
    return {"requests": amounts, "limits": limits}


def _claim_volume(env: Environment) -> Manifest:
    return {"name": contract.VOLUME_DATA, "persistentVolumeClaim": {"claimName": env.pvc_name}}


def _claim_mount(path: str, sub_path: str) -> Manifest:
    return {"name": contract.VOLUME_DATA, "mountPath": path, "subPath": sub_path}


def _home_mounts(image: Image) -> list[Manifest]:
    return [_claim_mount(contract.inner_home_target(image.username), contract.SUBPATH_HOME)]


def _pod(env: Environment, spec: Manifest, annotations: dict[str, str] | None = None) -> Manifest:
    base = {
        "hostname": env.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(env, env.pod_name, annotations),
        "spec": {**base, **spec},
    }


def _cvm_scheduling(settings: InfrastructureSettings) -> Manifest:
    spec: Manifest = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": settings.cvm_termination_grace_seconds,
    }
    if settings.cvm_node_selector:
        spec["nodeSelector"] = dict(settings.cvm_node_selector)
    if settings.cvm_tolerations:
        spec["tolerations"] = [dict(item) for item in settings.cvm_tolerations]
    return spec


def _bool(value: bool) -> str:
    return "true" if value else "false"


def volume_claim(env: Environment, settings: InfrastructureSettings) -> Manifest:
    """The environment's persistent volume: home and (for CVMs) the Docker caches."""
    spec: Manifest = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{env.disk_gib}Gi"}},
    }
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(env, env.pvc_name),
        "spec": spec,
    }


def registry_secret(env: Environment, image: Image) -> Manifest | None:
    """The pull secret (a Docker config file) of a private image; None for a public one."""
    config = image.docker_config_json()
    if config is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(env, env.registry_secret_name),
        "type": DOCKER_CONFIG_SECRET_TYPE,
        "data": {DOCKER_CONFIG_KEY: base64.b64encode(config.encode()).decode("ascii")},
    }


def network_policy(env: Environment) -> Manifest:
    """Deny all ingress; allow egress except to the cloud instance-metadata address."""
    selector = {
        labels.LABEL_MANAGED_BY: labels.APP_NAME,
        labels.LABEL_ENVIRONMENT_ID: str(env.pk),
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(env, env.network_policy_name),
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {
                    "to": [
                        {"ipBlock": {"cidr": "0.0.0.0/0", "except": [METADATA_ADDRESS_V4]}},
                        {"ipBlock": {"cidr": "::/0", "except": [METADATA_ADDRESS_V6]}},
                    ]
                },
                # Some CNIs never match pod addresses with ipBlock: allow pods (cluster DNS) explicitly.
                {"to": [{"namespaceSelector": {}}]},
            ],
        },
    }


def _supervisor_env(env: Environment, image: Image, settings: InfrastructureSettings) -> list[Manifest]:
    mounts = ",".join(
        [
            f"{contract.HOME_SOURCE_PATH}:{contract.inner_home_target(image.username)}",
            f"{contract.INNER_DOCKER_SOURCE_PATH}:{contract.INNER_DOCKER_TARGET}",
            f"{contract.INNER_CONTAINERS_SOURCE_PATH}:{contract.INNER_CONTAINERS_TARGET}",
        ]
    )

    def resource(name: str, resource_name: str, divisor: str) -> Manifest:
        ref = {
            "containerName": contract.SUPERVISOR_CONTAINER_NAME,
            "resource": resource_name,
            "divisor": divisor,
        }
        return {"name": name, "valueFrom": {"resourceFieldRef": ref}}

    variables = [
        {"name": contract.ENV_INNER_IMAGE, "value": join_reference(image.repository, env.tag)},
        {"name": contract.ENV_INNER_USERNAME, "value": image.username},
        {"name": contract.ENV_INNER_HOSTNAME, "value": env.name},
        {"name": contract.ENV_INNER_MOUNTS, "value": mounts},
        resource(contract.ENV_CPU_MILLICORES, "limits.cpu", "1m"),
        resource(contract.ENV_MEMORY_BYTES, "limits.memory", "1"),
        {"name": contract.ENV_ADD_TUN, "value": _bool(settings.add_tun)},
        {"name": contract.ENV_ADD_FUSE, "value": _bool(settings.add_fuse)},
        {"name": contract.ENV_BRIDGE_CIDR, "value": settings.inner_bridge_cidr},
    ]
    if image.command:
        variables.append({"name": contract.ENV_INNER_COMMAND, "value": json.dumps(image.command)})
    return variables


def cvm_supervisor_pod(env: Environment, image: Image, settings: InfrastructureSettings) -> Manifest:
    """The CVM pod of the supervising-container backend (see PRODUCT.md, "How a CVM is built")."""
    mounts = [
        {"name": contract.VOLUME_HOST_MODULES, "mountPath": contract.HOST_MODULES_PATH, "readOnly": True},
        {"name": contract.VOLUME_HOST_USR_SRC, "mountPath": contract.HOST_USR_SRC_PATH, "readOnly": True},
        {"name": contract.VOLUME_SYSBOX, "mountPath": contract.SYSBOX_DATA_PATH},
        _claim_mount(contract.OUTER_DOCKER_DATA_PATH, contract.SUBPATH_OUTER_DOCKER),
        _claim_mount(contract.HOME_SOURCE_PATH, contract.SUBPATH_HOME),
        _claim_mount(contract.INNER_DOCKER_SOURCE_PATH, contract.SUBPATH_INNER_DOCKER),
        _claim_mount(contract.INNER_CONTAINERS_SOURCE_PATH, contract.SUBPATH_INNER_CONTAINERS),
        {"name": contract.VOLUME_RUN, "mountPath": contract.RUN_PATH},
    ]
    volumes = [
        {
            "name": contract.VOLUME_HOST_MODULES,
            "hostPath": {"path": contract.HOST_MODULES_PATH, "type": "Directory"},
        },
        {
            "name": contract.VOLUME_HOST_USR_SRC,
            "hostPath": {"path": contract.HOST_USR_SRC_PATH, "type": "Directory"},
        },
        {"name": contract.VOLUME_SYSBOX, "emptyDir": {}},
        _claim_volume(env),
        {"name": contract.VOLUME_RUN, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]
    if image.has_registry_credentials:
        mounts.append(
            {
                "name": contract.VOLUME_REGISTRY_AUTH,
                "mountPath": contract.REGISTRY_AUTH_PATH,
                "readOnly": True,
            }
        )
        volumes.append(
            {
                "name": contract.VOLUME_REGISTRY_AUTH,
                "secret": {
                    "secretName": env.registry_secret_name,
                    "items": [{"key": DOCKER_CONFIG_KEY, "path": contract.REGISTRY_AUTH_FILE}],
                    "defaultMode": 0o400,
                },
            }
        )
    container = {
        "name": contract.SUPERVISOR_CONTAINER_NAME,
        "image": settings.supervisor_image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"privileged": True},
        "env": _supervisor_env(env, image, settings),
        "resources": _resources(env),
        "volumeMounts": mounts,
        "readinessProbe": {
            "exec": {"command": list(contract.READINESS_COMMAND)},
            "periodSeconds": READINESS_PERIOD_SECONDS,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 1,
        },
        "terminationMessagePath": contract.TERMINATION_LOG_PATH,
        "terminationMessagePolicy": "File",
    }
    return _pod(env, {**_cvm_scheduling(settings), "containers": [container], "volumes": volumes})


def _pull_secrets(env: Environment, image: Image) -> Manifest:
    if not image.has_registry_credentials:
        return {}
    return {"imagePullSecrets": [{"name": env.registry_secret_name}]}


def cvm_runtimeclass_pod(
    env: Environment,
    image: Image,
    settings: InfrastructureSettings,
    node_runtime: str = NODE_RUNTIME_CONTAINERD,
) -> Manifest:
    """The CVM pod of the RuntimeClass backend: sysbox-runc with a user namespace, nothing privileged.

    ``node_runtime`` says how the nodes turn user namespaces on: ``hostUsers: false`` with
    containerd (Kubernetes >= 1.30), or the CRI-O ``userns-mode`` annotation.
    """
    if node_runtime not in {NODE_RUNTIME_CONTAINERD, NODE_RUNTIME_CRIO}:
        raise ValueError(f"unknown node runtime {node_runtime!r}")
    container = {
        "name": contract.ENVIRONMENT_CONTAINER_NAME,
        "image": join_reference(image.repository, env.tag),
        "command": contract.runtimeclass_wrapper_command(),
        "resources": _resources(env),
        "volumeMounts": [
            *_home_mounts(image),
            _claim_mount(contract.INNER_DOCKER_TARGET, contract.SUBPATH_INNER_DOCKER),
            _claim_mount(contract.INNER_CONTAINERS_TARGET, contract.SUBPATH_INNER_CONTAINERS),
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec: Manifest = {
        "runtimeClassName": RUNTIME_CLASS_NAME,
        **_cvm_scheduling(settings),
        **_pull_secrets(env, image),
        "containers": [container],
        "volumes": [_claim_volume(env)],
    }
    annotations = None
    if node_runtime == NODE_RUNTIME_CONTAINERD:
        spec["hostUsers"] = False
    else:
        annotations = {CRIO_USERNS_ANNOTATION: CRIO_USERNS_MODE}
    return _pod(env, spec, annotations)


def standard_pod(env: Environment, image: Image, settings: InfrastructureSettings) -> Manifest:
    """A plain container: restricted Pod Security when the image declares a non-root UID, else
    baseline with hardening (no privilege escalation, RuntimeDefault seccomp, no added capabilities)."""
    seccomp = {"type": "RuntimeDefault"}
    if image.run_as_uid:
        uid = image.run_as_uid
        pod_security: Manifest = {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": seccomp,
        }
        container_security: Manifest = {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "runAsNonRoot": True,
            "runAsUser": uid,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": seccomp,
        }
    else:
        pod_security = {"seccompProfile": seccomp}
        container_security = {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "seccompProfile": seccomp,
        }
    container = {
        "name": contract.ENVIRONMENT_CONTAINER_NAME,
        "image": join_reference(image.repository, env.tag),
        "command": list(image.command) if image.command else list(contract.KEEPALIVE_COMMAND),
        "securityContext": container_security,
        "resources": _resources(env, gpu=True),
        "volumeMounts": _home_mounts(image),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec: Manifest = {
        "restartPolicy": "Always",
        "securityContext": pod_security,
        **_pull_secrets(env, image),
        "containers": [container],
        "volumes": [_claim_volume(env)],
    }
    if env.gpu_count:
        # GPU nodes are usually tainted with the resource name; only pods asking for GPUs tolerate it.
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return _pod(env, spec)


def pod(
    env: Environment,
    image: Image,
    settings: InfrastructureSettings,
    node_runtime: str = NODE_RUNTIME_CONTAINERD,
) -> Manifest:
    """The environment's pod: the backend stored on the environment at build time decides."""
    if not env.cvm:
        return standard_pod(env, image, settings)
    backend = env.cvm_backend or settings.cvm_backend
    if backend == CvmBackend.RUNTIMECLASS:
        return cvm_runtimeclass_pod(env, image, settings, node_runtime)
    if backend == CvmBackend.SUPERVISOR:
        return cvm_supervisor_pod(env, image, settings)
    raise ValueError(f"unknown CVM backend {backend!r}")


def environment_objects(
    env: Environment,
    image: Image,
    settings: InfrastructureSettings,
    node_runtime: str = NODE_RUNTIME_CONTAINERD,
) -> list[Manifest]:
    """Every object of the environment, in write order (claim and secret before the pod)."""
    objects = [volume_claim(env, settings)]
    secret = registry_secret(env, image)
    if secret is not None:
        objects.append(secret)
    objects.append(network_policy(env))
    objects.append(pod(env, image, settings, node_runtime))
    return objects


def secret_owner_reference(pod_obj: Manifest) -> Manifest:
    """An ownerReference to the created pod (camelCase dict as the API returned it), so the
    registry secret goes away with the pod; ``blockOwnerDeletion`` stays off (no finalizer wait)."""
    metadata = pod_obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }
