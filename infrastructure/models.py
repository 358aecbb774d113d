"""Infrastructure settings: the CVM toggle, the CVM pod's knobs, and the limits of an environment.

One row (pk 1). Provisioning reads it when it builds a pod, so a change applies to new builds and
rebuilds, never to a running pod. Units: CPU in millicores, memory in MiB, disk in GiB.
"""

from __future__ import annotations

import ipaddress
from importlib import metadata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from coderadmin.slugs import is_safe_slug

SINGLETON_PK = 1
# The default inner Docker bridge (the supervisor's dockerd ``bip``). Outside 10.0.0.0/8 (GKE, AKS,
# kubeadm, k3s pod and service ranges), 192.168.0.0/16 (Calico's default pool), 172.17.0.0/16 (the
# Docker default the user's own dockerd uses inside the CVM), 172.20.0.0/16 (an EKS service range)
# and 172.31.0.0/16 (AWS default VPCs). A /24 is plenty: the bridge holds one container.
DEFAULT_INNER_BRIDGE_CIDR = "172.30.0.1/24"
DEFAULT_NAMESPACE = "coderadmin-environments"


def default_supervisor_image() -> str:
    """The supervising container image of this release."""
    prefix = settings.SUPERVISOR_IMAGE_PREFIX
    try:
        version = metadata.version("coderadmin")
    except metadata.PackageNotFoundError:
        version = "0.1.0"
    return f"{prefix}/coderadmin-supervisor:{version}"


def validate_bridge_cidr(value: str) -> None:
    """The inner bridge is given as Docker's ``bip``: a host address with a prefix, IPv4, private."""
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise ValidationError("Enter an address with a prefix length, such as 172.30.0.1/24.") from exc
    if interface.version != 4:
        raise ValidationError("The inner Docker bridge must be an IPv4 network.")
    if "/" not in value:
        raise ValidationError("Give the prefix length too, such as 172.30.0.1/24.")
    network = interface.network
    if not network.is_private or network.prefixlen > 30:
        raise ValidationError("Use a private network with a prefix of /30 or larger (e.g. /24).")
    if interface.ip in {network.network_address, network.broadcast_address}:
        raise ValidationError("The bridge address must be a host address, not the network or broadcast one.")


def validate_namespace(value: str) -> None:
    if not is_safe_slug(value):
        raise ValidationError(
            "A namespace is at most 63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit."
        )


def validate_node_selector(value: object) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(
            'The node selector is an object of label names to values, e.g. {"pool": "cvm"}.'
        )


_TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})


def validate_tolerations(value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError("Tolerations are a list of objects.")
    for item in value:
        if not isinstance(item, dict) or not set(item) <= _TOLERATION_KEYS:
            raise ValidationError(
                "Each toleration is an object with key, operator, value, effect and tolerationSeconds only."
            )
        if item.get("operator", "Equal") not in {"Equal", "Exists"}:
            raise ValidationError("A toleration's operator is Equal or Exists.")
        if item.get("effect", "") not in {"", "NoSchedule", "PreferNoSchedule", "NoExecute"}:
            raise ValidationError("A toleration's effect is NoSchedule, PreferNoSchedule or NoExecute.")
        seconds = item.get("tolerationSeconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            raise ValidationError("tolerationSeconds is a whole number.")
        for key in ("key", "value"):
            if not isinstance(item.get(key, ""), str):
                raise ValidationError(f"A toleration's {key} is text.")


class CvmBackend(models.TextChoices):
    """How CVM pods are built; an environment keeps the one it was built with."""

    SUPERVISOR = "supervisor", "Supervising container (privileged pod running sysbox)"
    RUNTIMECLASS = "runtimeclass", "sysbox RuntimeClass on prepared nodes"


class InfrastructureSettings(models.Model):
    cvm_enabled = models.BooleanField("enable Container-Based Virtual Machines", default=False)
    default_to_cvm = models.BooleanField("default new environments to CVM", default=False)
    cvm_backend = models.CharField(
        "CVM backend", max_length=20, choices=CvmBackend.choices, default=CvmBackend.SUPERVISOR
    )
    supervisor_image = models.CharField(
        "supervising container image", max_length=255, default=default_supervisor_image
    )
    add_tun = models.BooleanField("add TUN device", default=False)
    add_fuse = models.BooleanField("add FUSE device", default=False)
    inner_bridge_cidr = models.CharField(
        "inner Docker bridge CIDR",
        max_length=43,
        default=DEFAULT_INNER_BRIDGE_CIDR,
        validators=[validate_bridge_cidr],
        help_text="Bridge address and prefix of the Docker network inside each CVM pod.",
    )
    environments_namespace = models.CharField(
        max_length=63, default=DEFAULT_NAMESPACE, validators=[validate_namespace]
    )
    storage_class = models.CharField(
        max_length=253, blank=True, help_text="Blank: the cluster's default storage class."
    )
    cvm_node_selector = models.JSONField(
        "CVM node selector", default=dict, blank=True, validators=[validate_node_selector]
    )
    cvm_tolerations = models.JSONField(
        "CVM tolerations", default=list, blank=True, validators=[validate_tolerations]
    )
    default_cpu_millicores = models.PositiveIntegerField(default=2000, validators=[MinValueValidator(100)])
    max_cpu_millicores = models.PositiveIntegerField(default=8000, validators=[MinValueValidator(100)])
    default_memory_mib = models.PositiveIntegerField(default=4096, validators=[MinValueValidator(128)])
    max_memory_mib = models.PositiveIntegerField(default=16384, validators=[MinValueValidator(128)])
    default_disk_gib = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1)])
    max_disk_gib = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1)])
    default_gpu_count = models.PositiveIntegerField(default=0)
    max_gpu_count = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(16)])
    max_environments_per_member = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1)])
    build_timeout_seconds = models.PositiveIntegerField(default=900, validators=[MinValueValidator(60)])
    cvm_termination_grace_seconds = models.PositiveIntegerField(
        "CVM termination grace period (seconds)",
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3600)],
        help_text="The supervisor needs up to 90 s to stop the inner container cleanly.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "infrastructure settings"
        verbose_name_plural = "infrastructure settings"

    def __str__(self) -> str:
        return "Infrastructure settings"

    def save(self, *args, **kwargs) -> None:
        self.pk = SINGLETON_PK
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> InfrastructureSettings:
        """The settings row, created with defaults on first use."""
        obj, _ = cls.objects.get_or_create(pk=SINGLETON_PK)
        return obj

    def clean(self) -> None:
        errors: dict[str, str] = {}
        limits = (
            ("cpu_millicores", "millicores"),
            ("memory_mib", "MiB"),
            ("disk_gib", "GiB"),
            ("gpu_count", "GPUs"),
        )
        for kind, unit in limits:
            default, maximum = getattr(self, f"default_{kind}"), getattr(self, f"max_{kind}")
            if default is not None and maximum is not None and default > maximum:
                errors[f"default_{kind}"] = (
                    f"The default ({default} {unit}) is above the maximum ({maximum})."
                )
        if errors:
            raise ValidationError(errors)


class InfrastructureSettingsChange(models.Model):
    """One changed field of the settings: who, when, old -> new (the history on the settings page)."""

    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    field = models.CharField(max_length=64)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)

    class Meta:
        ordering = ("-changed_at", "-id")

    def __str__(self) -> str:
        return f"{self.field}: {self.old_value} → {self.new_value}"


class ReadinessReport(models.Model):
    """One run of the readiness checks: queued by a person, filled in by the Celery task.

    ``results`` holds :meth:`infrastructure.readiness.CheckResult.as_dict` rows in page order. A report
    asked for when turning CVMs on (``purpose`` enable) turns them on itself when nothing fails.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        ERROR = "error", "Error"

    class Purpose(models.TextChoices):
        MANUAL = "manual", "Run on demand"
        ENABLE = "enable", "Before enabling CVMs"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.MANUAL)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    progress_done = models.PositiveSmallIntegerField(default=0)
    progress_total = models.PositiveSmallIntegerField(default=0)
    progress_label = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # pass / warn / fail / info once done; blank before.
    status = models.CharField(max_length=10, blank=True)
    cluster_version = models.CharField(max_length=100, blank=True)
    cluster_cidrs = models.JSONField(default=list, blank=True)
    namespace_missing = models.BooleanField(default=False)
    results = models.JSONField(default=list, blank=True)
    # The backend and namespace the checks ran for: a later settings change makes the report stale.
    cvm_backend = models.CharField(max_length=20, blank=True)
    environments_namespace = models.CharField(max_length=63, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Readiness report {self.pk} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in {self.State.DONE, self.State.ERROR}

    @property
    def failures(self) -> list[dict]:
        """The failed rows: hard requirements that refuse turning CVMs on without an override."""
        return [row for row in self.results if row.get("status") == "fail"]

    @property
    def progress_percent(self) -> int:
        if not self.progress_total:
            return 0
        return min(100, round(100 * self.progress_done / self.progress_total))
