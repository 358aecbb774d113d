"""Forms of the environments and images pages: they parse and check input; services write.

Every limit a user can hit (the image's minimums, the site's maximums, the CVM switch, GPUs in CVMs,
the number of environments per member) is a form error next to the field, never a 500 page.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from environments.image_services import ImageData
from environments.models import (
    ENVIRONMENT_NAME_MAX_LENGTH,
    Environment,
    Image,
    ImageTag,
    validate_command,
    validate_environment_name,
    validate_image_username,
)
from environments.references import join_reference, validate_repository
from environments.selectors import owned_environment_count
from infrastructure.models import InfrastructureSettings

DESCRIPTION_MAX_LENGTH = 2000
TAGS_TEXT_MAX_LENGTH = 10_000
COMMAND_MAX_LENGTH = 2000
CVM_DISABLED_HELP = (
    "Container-based virtual machines are turned off on this site; ask a site admin to enable them."
)
DEPRECATED_ERROR = "This image is deprecated: new environments cannot use it; choose another one."
GPU_IN_CVM_ERROR = "GPUs are not supported in container-based virtual machines."

# (field, image minimum attribute, settings maximum attribute, unit shown to the user)
RESOURCES = (
    ("cpu_millicores", "min_cpu_millicores", "max_cpu_millicores", "millicores"),
    ("memory_mib", "min_memory_mib", "max_memory_mib", "MiB"),
    ("disk_gib", "min_disk_gib", "max_disk_gib", "GiB"),
)


def image_minimums_text(image: Image) -> str:
    """The image's minimums in words, shown next to it in the image select."""
    return (
        f"needs at least {image.min_cpu_millicores} millicores, {image.min_memory_mib} MiB, "
        f"{image.min_disk_gib} GiB"
    )


class ImageTagSelect(forms.Select):
    """A select whose options carry the chosen image's minimums (read by environments.js)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.option_data: dict[str, dict[str, str]] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        option["attrs"].update(self.option_data.get(str(value), {}))
        return option


class EnvironmentCreateForm(forms.Form):
    """Name, image and tag, resources and the CVM switch of a new environment."""

    name = forms.CharField(
        strip=True,
        validators=[validate_environment_name],
        widget=forms.TextInput(
            attrs={"maxlength": ENVIRONMENT_NAME_MAX_LENGTH, "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text=(
            f"Up to {ENVIRONMENT_NAME_MAX_LENGTH} lowercase letters, digits and single hyphens, starting "
            "with a letter. It becomes the hostname."
        ),
    )
    image_tag = forms.ChoiceField(label="Image and tag", widget=ImageTagSelect)
    cpu_millicores = forms.IntegerField(label="CPU (millicores; 1000 = 1 CPU)", min_value=1)
    memory_mib = forms.IntegerField(label="Memory (MiB)", min_value=1)
    disk_gib = forms.IntegerField(label="Disk (GiB)", min_value=1)
    gpu_count = forms.IntegerField(label="GPUs", min_value=0)
    cvm = forms.BooleanField(label="Run as Container-based Virtual Machine", required=False)

    def __init__(
        self,
        data: Any = None,
        *,
        owner: Any,
        infrastructure: InfrastructureSettings,
        images: list[Image],
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.owner = owner
        self.infrastructure = infrastructure
        self.tags_by_id: dict[str, ImageTag] = {}
        self._set_image_choices(images)
        for field, _minimum, maximum_attr, unit in RESOURCES:
            maximum = getattr(infrastructure, maximum_attr)
            self.fields[field].max_value = maximum
            self.fields[field].validators.append(MaxValueValidator(maximum))
            self.fields[field].widget.attrs["max"] = maximum
            self.fields[field].help_text = f"At least the chosen image's minimum; at most {maximum} {unit}."
        for field, default in (
            ("cpu_millicores", infrastructure.default_cpu_millicores),
            ("memory_mib", infrastructure.default_memory_mib),
            ("disk_gib", infrastructure.default_disk_gib),
            ("gpu_count", infrastructure.default_gpu_count),
        ):
            self.fields[field].initial = default
        self._set_gpu_limit(infrastructure.max_gpu_count)
        self._set_cvm(infrastructure)

    def _set_image_choices(self, images: list[Image]) -> None:
        widget = self.fields["image_tag"].widget
        groups: list[tuple[str, list[tuple[str, str]]]] = []
        for image in images:
            options = []
            for tag in image.tags.all():
                tag.image = image
                key = str(tag.pk)
                self.tags_by_id[key] = tag
                options.append((key, f"{tag.reference}{' (default)' if tag.is_default else ''}"))
                widget.option_data[key] = {
                    **({"disabled": True} if image.deprecated else {}),
                    "data-min-cpu_millicores": str(image.min_cpu_millicores),
                    "data-min-memory_mib": str(image.min_memory_mib),
                    "data-min-disk_gib": str(image.min_disk_gib),
                }
            marker = " (deprecated)" if image.deprecated else ""
            label = f"{image.repository}{marker} — {image_minimums_text(image)}"
            groups.append((label, options))
        self.fields["image_tag"].choices = [("", "Choose an image"), *groups]
        first = next((image for image in images if not image.deprecated), None)
        if first is not None:
            default = next((t for t in first.tags.all() if t.is_default), None) or first.tags.all()[0]
            self.fields["image_tag"].initial = str(default.pk)

    def _set_gpu_limit(self, maximum: int) -> None:
        field = self.fields["gpu_count"]
        field.max_value = maximum
        field.validators.append(MaxValueValidator(maximum))
        field.widget.attrs["max"] = maximum
        field.help_text = (
            f"At most {maximum}; not available in container-based virtual machines."
            if maximum
            else "This site offers no GPUs."
        )

    def _set_cvm(self, infrastructure: InfrastructureSettings) -> None:
        field = self.fields["cvm"]
        if infrastructure.cvm_enabled:
            field.initial = infrastructure.default_to_cvm
            field.help_text = (
                "A full Linux machine with systemd and its own Docker, isolated by sysbox. GPUs are not "
                "available in CVMs."
            )
        else:
            field.initial = False
            field.widget.attrs["disabled"] = True
            field.help_text = CVM_DISABLED_HELP

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if Environment.objects.filter(owner=self.owner, name=name).exists():
            raise ValidationError("You already have an environment with this name.")
        return name

    def clean_image_tag(self) -> ImageTag:
        tag = self.tags_by_id.get(self.cleaned_data["image_tag"])
        if tag is None:
            raise ValidationError("Choose one of the listed images.")
        if tag.image.deprecated:
            raise ValidationError(DEPRECATED_ERROR)
        return tag

    def clean_cvm(self) -> bool:
        cvm = self.cleaned_data["cvm"]
        if cvm and not self.infrastructure.cvm_enabled:
            raise ValidationError(CVM_DISABLED_HELP)
        return cvm

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        tag = data.get("image_tag")
        if tag is not None:
            for field, minimum_attr, _maximum, unit in RESOURCES:
                minimum = getattr(tag.image, minimum_attr)
                if data.get(field) is not None and data[field] < minimum:
                    self.add_error(field, f"This image needs at least {minimum} {unit}.")
        if data.get("cvm") and data.get("gpu_count"):
            self.add_error("gpu_count", GPU_IN_CVM_ERROR)
        limit = self.infrastructure.max_environments_per_member
        if owned_environment_count(self.owner) >= limit:
            raise ValidationError(
                f"You already have {limit} environments, the most this site allows; delete one first."
            )
        return data


class RebuildForm(forms.Form):
    """Rebuild with another tag of the same image or other resources; only the disk is kept."""

    tag = forms.ChoiceField(label="Tag")
    cpu_millicores = forms.IntegerField(label="CPU (millicores; 1000 = 1 CPU)", min_value=1)
    memory_mib = forms.IntegerField(label="Memory (MiB)", min_value=1)
    disk_gib = forms.IntegerField(label="Disk (GiB)", min_value=1)

    def __init__(
        self,
        data: Any = None,
        *,
        environment: Environment,
        infrastructure: InfrastructureSettings,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault(
            "initial",
            {
                "tag": environment.tag,
                "cpu_millicores": environment.cpu_millicores,
                "memory_mib": environment.memory_mib,
                "disk_gib": environment.disk_gib,
            },
        )
        super().__init__(data, **kwargs)
        self.environment = environment
        image = environment.image
        tags = [t.tag for t in image.tags.all()]
        if environment.tag not in tags:
            tags.insert(0, environment.tag)
        self.fields["tag"].choices = [(t, join_reference(image.repository, t)) for t in tags]
        for field, minimum_attr, maximum_attr, unit in RESOURCES:
            minimum = getattr(image, minimum_attr)
            if field == "disk_gib":
                minimum = max(minimum, environment.disk_gib)
            maximum = getattr(infrastructure, maximum_attr)
            self.fields[field].validators += [MinValueValidator(minimum), MaxValueValidator(maximum)]
            self.fields[field].widget.attrs.update({"min": minimum, "max": maximum})
            self.fields[field].help_text = f"Between {minimum} and {maximum} {unit}."
        self.fields["disk_gib"].help_text += " A disk can grow, never shrink."


def _parse_tags(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for part in text.replace(",", " ").split():
        seen.setdefault(part, None)
    return list(seen)


class ImageForm(forms.Form):
    """An image and its tags; the registry password is write-only (blank keeps the stored one)."""

    repository = forms.CharField(
        max_length=255,
        validators=[validate_repository],
        help_text="Without tag, e.g. registry.example.com:5000/team/dev or ubuntu.",
    )
    description = forms.CharField(
        required=False, max_length=DESCRIPTION_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 3})
    )
    tags = forms.CharField(
        max_length=TAGS_TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="Tags or digests members may choose, separated by spaces, commas or new lines.",
    )
    default_tag = forms.CharField(
        max_length=200, required=False, help_text="One of the tags above; blank: the first one."
    )
    username = forms.CharField(
        max_length=32,
        initial="coder",
        validators=[validate_image_username],
        help_text="The user account that exists in the image; its home is kept on the volume.",
    )
    run_as_uid = forms.IntegerField(
        label="Run as UID",
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        help_text="Non-root UID of that user: standard environments get the restricted security profile.",
    )
    command = forms.CharField(
        label="Long-running command",
        required=False,
        max_length=COMMAND_MAX_LENGTH,
        help_text='Optional, as a JSON list such as ["/usr/bin/code-server", "--bind-addr", "0.0.0.0:8080"]; '
        "otherwise a keep-alive keeps the container up.",
    )
    min_cpu_millicores = forms.IntegerField(label="Minimum CPU (millicores)", min_value=1, initial=250)
    min_memory_mib = forms.IntegerField(label="Minimum memory (MiB)", min_value=1, initial=512)
    min_disk_gib = forms.IntegerField(label="Minimum disk (GiB)", min_value=1, initial=1)
    registry_username = forms.CharField(label="Registry user name", max_length=255, required=False)
    registry_password = forms.CharField(
        label="Registry password or token",
        required=False,
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again.",
    )
    clear_credentials = forms.BooleanField(label="Remove the stored registry credentials", required=False)
    enabled = forms.BooleanField(required=False, initial=True, help_text="Members can choose it.")
    deprecated = forms.BooleanField(
        required=False,
        help_text="Shown as deprecated: existing environments keep it, new ones cannot choose it.",
    )

    def __init__(
        self,
        data: Any = None,
        *,
        infrastructure: InfrastructureSettings,
        image: Image | None = None,
        **kwargs: Any,
    ) -> None:
        if image is not None:
            kwargs.setdefault("initial", image_initial(image))
        super().__init__(data, **kwargs)
        self.infrastructure = infrastructure
        self.image = image
        if image is None or not image.has_registry_credentials:
            del self.fields["clear_credentials"]
        else:
            self.fields[
                "registry_password"
            ].help_text = "Credentials are stored (encrypted, never shown). Leave blank to keep them."

    def clean_tags(self) -> list[str]:
        tags = _parse_tags(self.cleaned_data["tags"])
        if not tags:
            raise ValidationError("Give at least one tag.")
        return tags

    def clean_command(self) -> list[str] | None:
        text = self.cleaned_data["command"].strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise ValidationError(
                'Give the command as a JSON list of strings, e.g. ["/usr/local/bin/start"].'
            ) from None
        validate_command(value)
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for field, maximum_attr, unit in (
            ("min_cpu_millicores", "max_cpu_millicores", "millicores"),
            ("min_memory_mib", "max_memory_mib", "MiB"),
            ("min_disk_gib", "max_disk_gib", "GiB"),
        ):
            maximum = getattr(self.infrastructure, maximum_attr)
            if data.get(field) is not None and data[field] > maximum:
                self.add_error(field, f"Above the site's maximum of {maximum} {unit}: nobody could use it.")
        return data

    def image_data(self) -> ImageData:
        data = self.cleaned_data
        return ImageData(
            repository=data["repository"],
            tags=tuple(data["tags"]),
            default_tag=data["default_tag"],
            description=data["description"],
            username=data["username"],
            run_as_uid=data["run_as_uid"],
            command=data["command"],
            min_cpu_millicores=data["min_cpu_millicores"],
            min_memory_mib=data["min_memory_mib"],
            min_disk_gib=data["min_disk_gib"],
            registry_username=data["registry_username"],
            enabled=data["enabled"],
            deprecated=data["deprecated"],
        )


def image_initial(image: Image) -> dict[str, Any]:
    """The edit form's values; the registry password is never among them."""
    tags = list(image.tags.all())
    default = next((t.tag for t in tags if t.is_default), "")
    return {
        "repository": image.repository,
        "description": image.description,
        "tags": "\n".join(t.tag for t in tags),
        "default_tag": default,
        "username": image.username,
        "run_as_uid": image.run_as_uid,
        "command": json.dumps(image.command) if image.command else "",
        "min_cpu_millicores": image.min_cpu_millicores,
        "min_memory_mib": image.min_memory_mib,
        "min_disk_gib": image.min_disk_gib,
        "registry_username": image.registry_username,
        "enabled": image.enabled,
        "deprecated": image.deprecated,
    }
