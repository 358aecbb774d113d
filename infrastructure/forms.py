"""Forms of the infrastructure page: every setting, the CVM toggle and the enable override."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from infrastructure import validators
from infrastructure.models import InfrastructureSettings
from infrastructure.services import EDITABLE_FIELDS


class SettingsForm(forms.ModelForm):
    """Every infrastructure setting but the CVM toggle (which has its own checks).

    The node selector is typed as ``key=value`` lines and the tolerations as a JSON list; the bridge CIDR
    may not overlap the cluster's pod ranges the last readiness check found (``cluster_cidrs``).
    """

    cvm_node_selector = forms.CharField(
        label="CVM node selector",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One key=value label per line; CVM pods only run on nodes with all of them.",
    )
    cvm_tolerations = forms.CharField(
        label="CVM tolerations",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='A JSON list, e.g. [{"key": "dedicated", "operator": "Equal", "value": "cvm", '
        '"effect": "NoSchedule"}].',
    )

    class Meta:
        model = InfrastructureSettings
        fields = EDITABLE_FIELDS
        labels = {
            "default_cpu_millicores": "Default CPU (millicores)",
            "max_cpu_millicores": "Maximum CPU (millicores)",
            "default_memory_mib": "Default memory (MiB)",
            "max_memory_mib": "Maximum memory (MiB)",
            "default_disk_gib": "Default disk (GiB)",
            "max_disk_gib": "Maximum disk (GiB)",
            "default_gpu_count": "Default GPUs",
            "max_gpu_count": "Maximum GPUs",
            "max_environments_per_member": "Maximum environments per member",
            "build_timeout_seconds": "Build timeout (seconds)",
        }

    def __init__(self, *args: Any, cluster_cidrs: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster_cidrs = list(cluster_cidrs)
        if not self.is_bound:
            selector = self.instance.cvm_node_selector or {}
            self.initial["cvm_node_selector"] = "\n".join(f"{k}={v}" for k, v in selector.items())
            tolerations = self.instance.cvm_tolerations or []
            self.initial["cvm_tolerations"] = json.dumps(tolerations) if tolerations else ""
        if self.cluster_cidrs:
            self.fields[
                "inner_bridge_cidr"
            ].help_text += f" It must not overlap the cluster's pod ranges ({', '.join(self.cluster_cidrs)})."

    def clean_cvm_node_selector(self) -> dict[str, str]:
        return validators.validate_node_selector(self.cleaned_data.get("cvm_node_selector", ""))

    def clean_cvm_tolerations(self) -> list[dict[str, Any]]:
        return validators.validate_tolerations(self.cleaned_data.get("cvm_tolerations", ""))

    def clean_inner_bridge_cidr(self) -> str:
        """Docker's ``bip`` form is kept as typed; the range itself must be private and clash-free."""
        value = self.cleaned_data.get("inner_bridge_cidr", "").strip()
        validators.validate_bridge_cidr(value, self.cluster_cidrs)
        return value

    def changes(self) -> dict[str, Any]:
        """The submitted values of every editable field (the service keeps only those that changed)."""
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS}


class ToggleForm(forms.Form):
    """The switch: ticked means on. A plain form without JavaScript, posted by htmx on change."""

    enabled = forms.BooleanField(required=False, label="Enable Container-Based Virtual Machines")


class OverrideForm(forms.Form):
    """Turn CVMs on although checks failed: only with the box ticked."""

    report = forms.IntegerField(widget=forms.HiddenInput)
    override = forms.BooleanField(
        required=True,
        label="I understand these checks failed; turn CVMs on anyway.",
        error_messages={"required": "Tick the box to turn CVMs on despite the failed checks."},
    )

    def clean_report(self) -> int:
        value = self.cleaned_data["report"]
        if value < 1:
            raise ValidationError("Unknown readiness report.")
        return value
