"""Images, environments and their events.

Units: CPU in millicores, memory in MiB, disk in GiB (as in the infrastructure settings). The
Kubernetes names of an environment are generated once, at creation, and stored: renaming a user
or changing the namespace setting never orphans the objects of an existing environment.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from coderadmin.slugs import join_slugs, safe_slug
from environments import crypto
from environments.references import join_reference, registry_auth_key, validate_repository, validate_tag
from environments.states import State
from infrastructure.models import CvmBackend
from infrastructure.supervisor import contract

if TYPE_CHECKING:
    from infrastructure.models import InfrastructureSettings

ENVIRONMENT_NAME_MAX_LENGTH = 32
RESERVED_ENVIRONMENT_NAMES = frozenset(
    {"new", "admin", "create", "edit", "delete", "api", "static", "media", "settings", "manage", "events"}
)
_ENVIRONMENT_NAME_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def validate_environment_name(value: str) -> None:
    """DNS label rules (the name becomes the hostname), no ``--``, not a reserved URL word."""
    if not value:
        raise ValidationError("Enter a name.")
    if len(value) > ENVIRONMENT_NAME_MAX_LENGTH:
        raise ValidationError(f"A name is at most {ENVIRONMENT_NAME_MAX_LENGTH} characters.")
    if not _ENVIRONMENT_NAME_RE.match(value) or "--" in value:
        raise ValidationError(
            "Use lowercase letters, digits and single hyphens; start with a letter and end with a "
            "letter or digit."
        )
    if value in RESERVED_ENVIRONMENT_NAMES:
        raise ValidationError(f"“{value}” is reserved; choose another name.")


def validate_image_username(value: str) -> None:
    if not _USERNAME_RE.match(value or ""):
        raise ValidationError(
            "A Linux user name: up to 32 lowercase letters, digits, '_' or '-', not starting with a digit."
        )


def validate_command(value: object) -> None:
    """A long-running command is an exec-form list of strings, e.g. ["/usr/bin/code-server"]."""
    if value is None:
        return
    if not isinstance(value, list) or not value or not all(isinstance(part, str) for part in value):
        raise ValidationError('Give the command as a JSON list of strings, e.g. ["/usr/local/bin/start"].')
    if not value[0].strip():
        raise ValidationError("The command's first element is the program to run; it cannot be blank.")


class Image(models.Model):
    """An image members may build environments from, with optional private-registry credentials."""

    repository = models.CharField(
        max_length=255,
        unique=True,
        validators=[validate_repository],
        help_text="Without tag, e.g. registry.example.com:5000/team/dev or ubuntu.",
    )
    description = models.TextField(blank=True)
    username = models.CharField(
        max_length=32,
        default="coder",
        validators=[validate_image_username],
        help_text="The user account that exists in the image; its home is kept on the volume.",
    )
    run_as_uid = models.PositiveIntegerField(
        "run as UID",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(2**31 - 1)],
        help_text="Non-root UID of that user: standard environments get the restricted security profile.",
    )
    command = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_command],
        help_text="Optional long-running command (JSON list); otherwise a keep-alive keeps the container up.",
    )
    min_cpu_millicores = models.PositiveIntegerField(default=250)
    min_memory_mib = models.PositiveIntegerField(default=512)
    min_disk_gib = models.PositiveIntegerField(default=1)
    registry_username = models.CharField(max_length=255, blank=True)
    # Fernet token of the registry password or token; read through ``registry_password``.
    registry_password_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    deprecated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("repository",)

    def __str__(self) -> str:
        return self.repository

    @property
    def registry_password(self) -> str:
        """The decrypted password; for building the pull secret only, never for display."""
        return crypto.decrypt(self.registry_password_encrypted)

    @registry_password.setter
    def registry_password(self, value: str) -> None:
        self.registry_password_encrypted = crypto.encrypt(value or "")

    @property
    def has_registry_credentials(self) -> bool:
        return bool(self.registry_username and self.registry_password_encrypted)

    def docker_config_json(self) -> str | None:
        """The Docker ``config.json`` holding this image's registry credentials, or None."""
        if not self.has_registry_credentials:
            return None
        username, password = self.registry_username, self.registry_password
        auth = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        entry = {"username": username, "password": password, "auth": auth}
        return json.dumps({"auths": {registry_auth_key(self.repository): entry}}, sort_keys=True)

    def clean(self) -> None:
        if self.registry_username and not self.registry_password_encrypted:
            raise ValidationError({"registry_username": "Give the registry password or token too."})
        if self.registry_password_encrypted and not self.registry_username:
            raise ValidationError({"registry_username": "Give the registry user name for this password."})


class ImageTag(models.Model):
    """A tag (or digest) of an image members may choose; one per image is the default."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tags")
    tag = models.CharField(max_length=200, validators=[validate_tag])
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ("image_id", "-is_default", "tag")
        constraints = [
            models.UniqueConstraint(fields=["image", "tag"], name="image_tag_unique"),
            models.UniqueConstraint(
                fields=["image"], condition=Q(is_default=True), name="image_tag_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return join_reference(self.image.repository, self.tag)

    def clean(self) -> None:
        if self.image_id is None:
            return
        others = ImageTag.objects.filter(image_id=self.image_id).exclude(pk=self.pk)
        if self.is_default and others.filter(is_default=True).exists():
            raise ValidationError({"is_default": "This image already has a default tag."})
        if not self.is_default and not others.filter(is_default=True).exists():
            raise ValidationError({"is_default": "An image needs exactly one default tag; make this one it."})


class Environment(models.Model):
    class Entrypoint(models.TextChoices):
        NONE = "", "Not known yet"
        INIT = contract.INIT_ENTRYPOINT, contract.INIT_ENTRYPOINT
        KEEPALIVE = contract.KEEPALIVE_ENTRYPOINT, "keep-alive"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="environments")
    name = models.CharField(max_length=ENVIRONMENT_NAME_MAX_LENGTH, validators=[validate_environment_name])
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="environments")
    tag = models.CharField(max_length=200, validators=[validate_tag])
    cpu_millicores = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    memory_mib = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    disk_gib = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    gpu_count = models.PositiveIntegerField(default=0)
    cvm = models.BooleanField("container-based virtual machine", default=False)
    # Copied from the settings when a build starts; blank for standard environments.
    cvm_backend = models.CharField(max_length=20, choices=CvmBackend.choices, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CREATING, db_index=True)
    status_reason = models.TextField(blank=True)
    # Kubernetes names, generated by ``assign_kubernetes_names`` at creation and never recomputed.
    namespace = models.CharField(max_length=63, blank=True)
    pod_name = models.CharField(max_length=63, blank=True)
    pvc_name = models.CharField(max_length=63, blank=True)
    registry_secret_name = models.CharField(max_length=63, blank=True)
    network_policy_name = models.CharField(max_length=63, blank=True)
    entrypoint = models.CharField(max_length=32, choices=Entrypoint.choices, blank=True)
    node_name = models.CharField(max_length=253, blank=True)
    build_started_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped on each build: a task carrying an older generation knows its work is stale.
    generation = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("owner_id", "name")
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="environment_unique_name_per_owner"),
            models.UniqueConstraint(
                fields=["namespace", "pod_name"],
                condition=~Q(pod_name=""),
                name="environment_unique_pod_name",
            ),
        ]
        # The all-environments list (site admins and managers) pages newest first.
        indexes = [models.Index(fields=["-created_at", "-id"], name="environment_newest_first")]

    def __str__(self) -> str:
        return self.name

    @property
    def image_reference(self) -> str:
        return join_reference(self.image.repository, self.tag)

    def clean(self) -> None:
        if self.cvm and self.gpu_count:
            raise ValidationError(
                {"gpu_count": "GPUs are not supported in container-based virtual machines."}
            )
        if not self.cvm and self.cvm_backend:
            raise ValidationError(
                {"cvm_backend": "Only container-based virtual machines have a CVM backend."}
            )

    def assign_kubernetes_names(self, infrastructure: InfrastructureSettings) -> bool:
        """Generate and set the Kubernetes names once; False (and nothing changed) if already set."""
        if self.pod_name:
            return False
        base = kubernetes_base_name(self.owner.handle, self.name)
        self.namespace = infrastructure.environments_namespace
        self.pod_name = base
        self.network_policy_name = base
        self.pvc_name = join_slugs(base, "data")
        self.registry_secret_name = join_slugs(base, "registry")
        return True


def kubernetes_base_name(handle: str, name: str) -> str:
    """``<handle>-<name>`` when that is unambiguous, else a hashed slug of ``<handle>--<name>``.

    A handle without a hyphen ends at the first hyphen, so the plain join identifies the pair.
    Otherwise ``--`` (which neither part contains) separates them and the slug is hashed; hashed
    names contain ``---`` and plain ones never do, so two pairs never share a name.
    """
    plain = f"{handle}-{name}"
    if "-" not in handle and len(plain) <= 63 and "--" not in plain:
        return safe_slug(plain)
    return safe_slug(f"{handle}--{name}")


class EnvironmentEvent(models.Model):
    """A line of an environment's build log and state history."""

    class Type(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    class Source(models.TextChoices):
        DASHBOARD = "dashboard", "Dashboard"
        CLUSTER = "cluster", "Cluster event"
        SUPERVISOR = "supervisor", "Supervisor log"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(default=timezone.now)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.INFO)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.DASHBOARD)
    message = models.TextField()

    class Meta:
        ordering = ("time", "id")
        indexes = [models.Index(fields=["environment", "time"], name="environment_event_time")]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.type}: {self.message[:80]}"
