"""Manage > Admin > Infrastructure: thin views over the forms, the services and the guides.

Every page works without JavaScript (plain forms, POST with CSRF, redirects); htmx swaps the toggle and
polls a running report's partial, which answers 286 once the report is finished so polling stops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from coderadmin.roles import manage_required
from infrastructure import guides, services
from infrastructure.forms import OverrideForm, SettingsForm, ToggleForm
from infrastructure.gateway import GatewayError
from infrastructure.models import InfrastructureSettings, InfrastructureSettingsChange, ReadinessReport
from infrastructure.readiness import TITLES

HISTORY_ROWS = 50
PAGE = "infrastructure/page.html"
REPORT = "infrastructure/report.html"


def _rows(report: ReadinessReport | None) -> list[dict[str, Any]]:
    """The report's rows with their check titles, in the page's order of checks."""
    if report is None:
        return []
    order = {check: index for index, check in enumerate(TITLES)}
    rows = [
        {**row, "title": TITLES.get(row.get("check", ""), row.get("check", ""))} for row in report.results
    ]
    return sorted(rows, key=lambda row: order.get(row["check"], len(order)))


def _page_context(request: HttpRequest, form: SettingsForm | None = None) -> dict[str, Any]:
    settings = InfrastructureSettings.load()
    latest = services.latest_report()
    running = services.running_report()
    cidrs = latest.cluster_cidrs if latest else []
    return {
        "settings": settings,
        "form": form or SettingsForm(instance=settings, cluster_cidrs=cidrs),
        "history": InfrastructureSettingsChange.objects.select_related("changed_by")[:HISTORY_ROWS],
        "report": latest,
        "rows": _rows(latest),
        "running": running,
    }


@manage_required
@require_GET
def infrastructure(request: HttpRequest) -> HttpResponse:
    return render(request, PAGE, _page_context(request))


@manage_required
@require_POST
def settings_save(request: HttpRequest) -> HttpResponse:
    settings = InfrastructureSettings.load()
    latest = services.latest_report()
    form = SettingsForm(request.POST, instance=settings, cluster_cidrs=latest.cluster_cidrs if latest else [])
    if form.is_valid():
        try:
            rows = services.settings_update(
                InfrastructureSettings.load(), form.changes(), request.user, request
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if rows:
                messages.success(
                    request, f"Saved {len(rows)} change(s). They apply to new builds and rebuilds."
                )
            else:
                messages.info(request, "Nothing changed.")
            return redirect("infrastructure")
    return render(request, PAGE, _page_context(request, form), status=400)


@manage_required
@require_POST
def cvm_toggle(request: HttpRequest) -> HttpResponse:
    """Off switches CVMs off at once; on leads to the confirmation (which runs the checks first)."""
    form = ToggleForm(request.POST)
    form.is_valid()
    if form.cleaned_data.get("enabled"):
        confirm = reverse("infrastructure-cvm-enable")
        if request.htmx:
            return HttpResponseClientRedirect(confirm)
        return redirect(confirm)
    services.cvm_disable(actor=request.user, request=request)
    if request.htmx:
        return render(request, f"{PAGE}#toggle", _page_context(request))
    messages.success(request, "Container-Based Virtual Machines are off. Running CVMs keep running.")
    return redirect("infrastructure")


@manage_required
@require_http_methods(["GET", "POST"])
def cvm_enable(request: HttpRequest) -> HttpResponse:
    """GET: the confirmation page. POST: queue the checks; the report turns CVMs on if nothing fails."""
    if request.method == "POST":
        report = services.readiness_request(
            actor=request.user, purpose=ReadinessReport.Purpose.ENABLE, request=request
        )
        return redirect("infrastructure-report", pk=report.pk)
    context = _page_context(request)
    return render(request, "infrastructure/confirm_enable.html", context)


@manage_required
@require_POST
def cvm_override(request: HttpRequest) -> HttpResponse:
    """Turn CVMs on although checks failed: needs the ticked box; audit-logged with the failures."""
    form = OverrideForm(request.POST)
    report = None
    if form.is_valid():
        report = get_object_or_404(ReadinessReport, pk=form.cleaned_data["report"])
        try:
            services.cvm_enable(actor=request.user, report=report, override=True, request=request)
        except services.CvmEnableRefused as exc:
            form.add_error(None, exc.message)
        else:
            messages.warning(request, "Container-Based Virtual Machines are on, despite failed checks.")
            return redirect("infrastructure")
    elif form.cleaned_data.get("report"):
        report = ReadinessReport.objects.filter(pk=form.cleaned_data["report"]).first()
    if report is None:
        messages.error(request, "Choose a readiness report to override.")
        return redirect("infrastructure")
    return render(request, REPORT, _report_context(report, override_form=form), status=400)


@manage_required
@require_POST
def checks_run(request: HttpRequest) -> HttpResponse:
    report = services.readiness_request(actor=request.user, request=request)
    return redirect("infrastructure-report", pk=report.pk)


def _report_context(report: ReadinessReport, override_form: OverrideForm | None = None) -> dict[str, Any]:
    settings = InfrastructureSettings.load()
    failures = services.report_failures(report, settings) if report.finished else []
    return {
        "report": report,
        "rows": _rows(report),
        "settings": settings,
        "failures": failures,
        "override_form": override_form or OverrideForm(initial={"report": report.pk}),
    }


@manage_required
@require_GET
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    report = get_object_or_404(ReadinessReport.objects.select_related("requested_by"), pk=pk)
    context = _report_context(report)
    if request.htmx:
        response = render(request, f"{REPORT}#live", context)
        return HttpResponseStopPolling(response.content) if report.finished else response
    return render(request, REPORT, context)


@manage_required
@require_POST
def namespace_create(request: HttpRequest) -> HttpResponse:
    try:
        created = services.namespace_create(actor=request.user, request=request)
    except GatewayError as exc:
        messages.error(request, f"The namespace could not be created: {exc.message}")
    else:
        name = InfrastructureSettings.load().environments_namespace
        if created:
            messages.success(request, f"Created the namespace {name}. Run the checks again.")
        else:
            messages.info(request, f"The namespace {name} exists already.")
    return redirect("infrastructure")


# --- guides ----------------------------------------------------------------------------------------------

Field = tuple[str, str, str, str]  # name, label, kind (text/textarea/checkbox/select:...), placeholder

GUIDE_FIELDS: dict[str, list[Field]] = {
    "gke": [
        ("cluster_name", "Cluster name", "text", "dev-cluster"),
        ("location", "Region or zone", "text", "europe-west1 or europe-west1-b"),
        ("version", "Kubernetes version", "text", "empty: the regular channel's default"),
        ("machine_type", "Machine type", "text", guides.GKE_DEFAULT_MACHINE_TYPE),
        ("num_nodes", "Nodes", "number", "2"),
        ("pool_name", "Node pool name", "text", guides.GKE_DEFAULT_POOL),
        ("project", "Project ID", "text", "optional"),
        ("existing_cluster", "Add a node pool to an existing cluster", "checkbox", ""),
        ("needs_shiftfs", "Turn secure boot off (only for shiftfs on kernels before 5.19)", "checkbox", ""),
    ],
    "eks": [
        ("cluster_name", "Cluster name", "text", "dev-cluster"),
        ("region", "Region", "text", "eu-west-1"),
        ("version", "Kubernetes version", "text", guides.EKS_DEFAULT_VERSION),
        ("ami_family", "Ubuntu AMI family", "select:" + ",".join(guides.EKS_AMI_FAMILIES), ""),
        ("instance_type", "Instance type", "text", guides.EKS_DEFAULT_INSTANCE_TYPE),
        ("desired_capacity", "Nodes", "number", "2"),
        ("min_size", "Minimum nodes", "number", "1"),
        ("max_size", "Maximum nodes", "number", "4"),
        ("node_group_name", "Node group name", "text", guides.EKS_DEFAULT_NODE_GROUP),
        ("existing_cluster", "Add a node group to an existing cluster", "checkbox", ""),
    ],
    "aks": [
        ("resource_group", "Resource group", "text", "dev-rg"),
        ("cluster_name", "Cluster name", "text", "dev-cluster"),
        ("pool_name", "Node pool name", "text", guides.AKS_DEFAULT_POOL),
        ("vm_size", "VM size", "text", guides.AKS_DEFAULT_VM_SIZE),
        ("node_count", "Nodes", "number", "2"),
        ("version", "Kubernetes version", "text", "empty: the cluster's"),
    ],
    "sysbox": [("node_names", "Node names", "textarea", "node-1 node-2")],
}
GUIDE_TITLES = {
    "gke": "Google Kubernetes Engine",
    "eks": "Amazon EKS",
    "aks": "Azure Kubernetes Service",
    "sysbox": "sysbox on your own nodes",
}


def _gke(data: Mapping[str, Any]) -> dict[str, Any]:
    inp, errors = guides.validate_gke(data)
    if inp is None:
        return {"errors": errors}
    commands = [guides.display_command(argv) for argv in guides.gke_argv(inp)]
    return {"errors": {}, "commands": commands, "notes": guides.gke_notes(inp)}


def _eks(data: Mapping[str, Any]) -> dict[str, Any]:
    inp, errors = guides.validate_eks(data)
    if inp is None:
        return {"errors": errors}
    return {
        "errors": {},
        "config": guides.eks_config_yaml(inp),
        "config_filename": guides.EKS_CONFIG_FILENAME,
        "commands": guides.eks_commands(inp),
    }


def _aks(data: Mapping[str, Any]) -> dict[str, Any]:
    inp, errors = guides.validate_aks(data)
    if inp is None:
        return {"errors": errors}
    return {"errors": {}, "commands": [guides.display_command(argv) for argv in guides.aks_argv(inp)]}


def _sysbox(data: Mapping[str, Any]) -> dict[str, Any]:
    names, errors = guides.validate_sysbox(data)
    if names is None:
        return {"errors": errors}
    return {"errors": {}, "commands": guides.sysbox_steps(names)}


GUIDE_BUILDERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "gke": _gke,
    "eks": _eks,
    "aks": _aks,
    "sysbox": _sysbox,
}


@manage_required
@require_GET
def guides_page(request: HttpRequest) -> HttpResponse:
    """Per provider a small GET form; only the submitted provider's output (or errors) is built."""
    chosen = request.GET.get("provider", "")
    sections = []
    for provider, fields in GUIDE_FIELDS.items():
        submitted = provider == chosen
        output = GUIDE_BUILDERS[provider](request.GET) if submitted else {"errors": {}}
        sections.append(
            {
                "id": provider,
                "title": GUIDE_TITLES[provider],
                "submitted": submitted,
                "fields": [
                    {
                        "name": name,
                        "label": label,
                        "kind": kind.partition(":")[0],
                        "options": kind.partition(":")[2].split(",") if kind.startswith("select:") else [],
                        "placeholder": placeholder,
                        "value": request.GET.get(name, "") if submitted else "",
                        "error": output["errors"].get(name, ""),
                        "input_id": f"{provider}-{name}",
                    }
                    for name, label, kind, placeholder in fields
                ],
                **output,
            }
        )
    context = {
        "sections": sections,
        "chosen": chosen,
        "sysbox_labels": guides.SYSBOX_LABELS,
        "sysbox_notes": guides.SYSBOX_NOTES,
        "sysbox_manifest": guides.SYSBOX_INSTALL_MANIFEST,
        "dockerfile_systemd": guides.IMAGE_DOCKERFILE_SYSTEMD,
        "dockerfile_docker": guides.IMAGE_DOCKERFILE_DOCKER,
    }
    return render(request, "infrastructure/guides.html", context)
