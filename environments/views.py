"""Pages of environments and images. Thin: authorise, validate with a form, call one service, render.

Visibility comes from the selectors (others' environments are a 404, also for partials and actions);
acting needs the owner's Member role or a site admin/manager role (auditors only read: 403). Live
parts are htmx partials of the page's own template; polling stops with HTTP 286 in a final state.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotFound
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from coderadmin.forms import add_service_errors
from coderadmin.roles import Role, can_view_all_environments, manage_required, user_role
from environments import image_services, selectors, services
from environments.forms import EnvironmentCreateForm, ImageForm, RebuildForm
from environments.models import Environment, Image
from environments.states import Action, State, TransitionNotAllowed, allowed_actions, is_final
from infrastructure.models import InfrastructureSettings

ENVIRONMENTS_PER_PAGE = 25
IMAGES_PER_PAGE = 50

# The state in plain words, shown under the badge (the stored reason, if any, follows it).
STATE_EXPLANATIONS = {
    State.CREATING: "The environment is being set up; its build starts in a moment.",
    State.BUILDING: "The cluster is preparing the environment. The build log below shows its progress.",
    State.RUNNING: "The environment is up and running.",
    State.TURNING_OFF: "The environment is shutting down. Its disk is kept.",
    State.OFF: "The environment is off. Its disk is kept: start it to carry on where you left off.",
    State.ERROR: "The environment failed. Rebuild it to try again, or delete it.",
    State.DELETING: "The environment and its disk are being removed.",
    State.UNKNOWN: "The cluster cannot be reached or reports an unknown state; this updates when it answers.",
}

# URL word -> (state machine action, button label, what the flash message says is happening)
USER_ACTIONS: dict[str, tuple[Action, str, str]] = {
    "start": (Action.START, "Start", "Starting"),
    "stop": (Action.STOP, "Stop", "Stopping"),
    "rebuild": (Action.REBUILD, "Rebuild", "Rebuilding"),
    "cancel": (Action.CANCEL, "Cancel build", "Cancelling the build of"),
}

_ACTING_ROLES = frozenset({Role.SITE_ADMIN, Role.SITE_MANAGER})


def can_create_environments(user: Any) -> bool:
    """Members, site managers and site admins create environments; auditors only read."""
    return user_role(user) in (Role.MEMBER, Role.SITE_MANAGER, Role.SITE_ADMIN)


def can_act(user: Any, environment: Environment) -> bool:
    """Owners (with the Member role) act on their own environments, admins and managers on all."""
    role = user_role(user)
    if role in _ACTING_ROLES:
        return True
    return role is Role.MEMBER and environment.owner_id == user.pk


# --- Environments list --------------------------------------------------------------------------


@require_GET
@login_required
def environment_list(request: HttpRequest) -> HttpResponse:
    """Own environments (everyone's, with an owner filter, for roles that see all), paginated."""
    sees_all = can_view_all_environments(request.user)
    owner = request.GET.get("owner", "").strip()[:150] if sees_all else ""
    environments = selectors.environment_list(user=request.user, owner=owner)
    page = Paginator(environments, ENVIRONMENTS_PER_PAGE).get_page(request.GET.get("page"))
    live = any(not is_final(env.state) for env in page)
    context = {
        "page": page,
        "sees_all": sees_all,
        "owner": owner,
        "live": live,
        "can_create": can_create_environments(request.user),
        "can_manage_images": user_role(request.user) in _ACTING_ROLES,
        "query": _query(owner, page.number),
    }
    if request.htmx:
        return render(
            request, "environments/list.html#rows", context, status=200 if live else HTMX_STOP_POLLING
        )
    return render(request, "environments/list.html", context)


def _query(owner: str, page_number: int) -> str:
    """The list's query string, for the polling URL (the same rows as the page shows)."""
    params = {"owner": owner} if owner else {}
    if page_number > 1:
        params["page"] = str(page_number)
    return urlencode(params)


# --- Create -------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def environment_create(request: HttpRequest) -> HttpResponse:
    """The create form; a valid submission creates the environment and opens its page."""
    if not can_create_environments(request.user):
        raise PermissionDenied("Your role does not allow creating environments.")
    infrastructure = InfrastructureSettings.load()
    form = EnvironmentCreateForm(
        request.POST if request.method == "POST" else None,
        owner=request.user,
        infrastructure=infrastructure,
        images=selectors.enabled_images(),
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        tag = data["image_tag"]
        try:
            environment = services.environment_create(
                owner=request.user,
                name=data["name"],
                image=tag.image,
                tag=tag.tag,
                cpu_millicores=data["cpu_millicores"],
                memory_mib=data["memory_mib"],
                disk_gib=data["disk_gib"],
                gpu_count=data["gpu_count"],
                cvm=data["cvm"],
                request=request,
            )
        except ValidationError as exc:
            add_service_errors(form, exc, rename={"image": "image_tag", "tag": "image_tag"})
        except TransitionNotAllowed as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Creating {environment.name}. Its build log follows below.")
            return redirect("environments:detail", pk=environment.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "environments/create.html",
        {"form": form, "infrastructure": infrastructure, "has_images": bool(form.tags_by_id)},
        status=status,
    )


# --- Environment page ---------------------------------------------------------------------------


def _live_context(request: HttpRequest, environment: Environment, error: str = "") -> dict[str, Any]:
    acting = can_act(request.user, environment)
    possible = allowed_actions(environment.state) if acting else frozenset()
    buttons = [(word, label) for word, (action, label, _) in USER_ACTIONS.items() if action in possible]
    return {
        "environment": environment,
        "events": selectors.environment_events(environment),
        "explanation": STATE_EXPLANATIONS.get(State(environment.state), ""),
        "final": is_final(environment.state),
        "buttons": buttons,
        "can_delete": Action.DELETE in possible,
        "can_rebuild": Action.REBUILD in possible,
        "can_act": acting,
        "is_owner": environment.owner_id == request.user.pk,
        "action_error": error,
    }


@require_GET
@login_required
def environment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """State, reason, resources, image, entrypoint, node, the build log and the actions."""
    environment = selectors.environment_get(user=request.user, pk=pk)
    return render(request, "environments/detail.html", _live_context(request, environment))


@require_GET
@login_required
def environment_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the environment page, polled by htmx; 286 (stop polling) once final.

    Once the environment is gone (deleted), htmx callers are sent back to the list instead of
    polling a 404 forever; the answer is the same 404 for environments the user may not see.
    """
    try:
        environment = selectors.environment_get(user=request.user, pk=pk)
    except Http404:
        if not request.htmx:
            raise
        response = HttpResponseNotFound("This environment no longer exists.", content_type="text/plain")
        response["HX-Redirect"] = reverse("environments:list")
        return response
    status = HTMX_STOP_POLLING if is_final(environment.state) else 200
    return render(
        request, "environments/detail.html#live", _live_context(request, environment), status=status
    )


def _actionable(request: HttpRequest, pk: int) -> Environment:
    environment = selectors.environment_get(user=request.user, pk=pk)
    if not can_act(request.user, environment):
        raise PermissionDenied("You may view this environment but not change it.")
    return environment


def _action_refused(request: HttpRequest, environment: Environment, message: str) -> HttpResponse:
    """htmx callers get the live partial with the message and 409; forms get the page and a message."""
    if request.htmx:
        environment.refresh_from_db()
        return render(
            request, "environments/detail.html#live", _live_context(request, environment, message), status=409
        )
    messages.error(request, message)
    return redirect("environments:detail", pk=environment.pk)


@require_POST
@login_required
def environment_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Start, stop, rebuild or cancel the build of an environment."""
    if action not in USER_ACTIONS:
        raise Http404("No such action.")
    environment = _actionable(request, pk)
    _, _, doing = USER_ACTIONS[action]
    service = getattr(services, f"environment_{action}")
    try:
        service(environment, actor=request.user, request=request)
    except (TransitionNotAllowed, ValidationError) as exc:
        message = str(exc) if isinstance(exc, TransitionNotAllowed) else " ".join(exc.messages)
        return _action_refused(request, environment, message)
    if request.htmx:
        environment.refresh_from_db()
        return render(request, "environments/detail.html#live", _live_context(request, environment))
    messages.success(request, f"{doing} {environment.name}.")
    return redirect("environments:detail", pk=environment.pk)


@require_http_methods(["GET", "POST"])
@login_required
def environment_rebuild_options(request: HttpRequest, pk: int) -> HttpResponse:
    """Rebuild with another tag or resources (the plain Rebuild button keeps them)."""
    environment = _actionable(request, pk)
    form = RebuildForm(
        request.POST if request.method == "POST" else None,
        environment=environment,
        infrastructure=InfrastructureSettings.load(),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.environment_rebuild(
                environment, actor=request.user, request=request, **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        except TransitionNotAllowed as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Rebuilding {environment.name}.")
            return redirect("environments:detail", pk=environment.pk)
    return render(
        request,
        "environments/rebuild.html",
        {
            "environment": environment,
            "form": form,
            "allowed": Action.REBUILD in allowed_actions(environment.state),
        },
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
def environment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (works without JavaScript); POST deletes."""
    environment = _actionable(request, pk)
    if request.method == "GET":
        return render(
            request,
            "environments/delete.html",
            {"environment": environment, "allowed": Action.DELETE in allowed_actions(environment.state)},
        )
    try:
        services.environment_delete(environment, actor=request.user, request=request)
    except (TransitionNotAllowed, ValidationError) as exc:
        message = str(exc) if isinstance(exc, TransitionNotAllowed) else " ".join(exc.messages)
        return _action_refused(request, environment, message)
    messages.success(request, f"Deleting {environment.name} and its disk.")
    return redirect("environments:list")


# --- Images (site admins and managers) ----------------------------------------------------------


@require_GET
@manage_required
def image_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.image_list(), IMAGES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "images/list.html", {"page": page})


@require_http_methods(["GET", "POST"])
@manage_required
def image_create(request: HttpRequest) -> HttpResponse:
    infrastructure = InfrastructureSettings.load()
    form = ImageForm(request.POST if request.method == "POST" else None, infrastructure=infrastructure)
    if request.method == "POST" and form.is_valid():
        try:
            image = image_services.image_create(
                actor=request.user,
                data=form.image_data(),
                registry_password=form.cleaned_data["registry_password"],
                request=request,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Added {image.repository}.")
            return redirect("images:list")
    return render(
        request,
        "images/form.html",
        {"form": form, "image": None},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
@manage_required
def image_edit(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(Image.objects.prefetch_related("tags"), pk=pk)
    infrastructure = InfrastructureSettings.load()
    form = ImageForm(
        request.POST if request.method == "POST" else None, infrastructure=infrastructure, image=image
    )
    if request.method == "POST" and form.is_valid():
        try:
            image_services.image_update(
                image,
                actor=request.user,
                data=form.image_data(),
                registry_password=form.cleaned_data["registry_password"],
                clear_credentials=form.cleaned_data.get("clear_credentials", False),
                request=request,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Saved {image.repository}.")
            return redirect("images:list")
    return render(
        request,
        "images/form.html",
        {"form": form, "image": image},
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@manage_required
def image_enable(request: HttpRequest, pk: int) -> HttpResponse:
    image = image_services.image_set_enabled(
        get_object_or_404(Image, pk=pk), actor=request.user, enabled=True, request=request
    )
    messages.success(request, f"{image.repository} is offered for new environments.")
    return redirect("images:list")


@require_POST
@manage_required
def image_disable(request: HttpRequest, pk: int) -> HttpResponse:
    image = image_services.image_set_enabled(
        get_object_or_404(Image, pk=pk), actor=request.user, enabled=False, request=request
    )
    messages.success(request, f"{image.repository} is no longer offered; existing environments keep it.")
    return redirect("images:list")
