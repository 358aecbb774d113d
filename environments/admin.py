"""Django admin for operators: environments (with repair actions), images and their tags.

Nothing here writes rows directly: every change goes through the same services as the web UI, so the
state machine, the row locks and the audit log hold in the admin too. That is why environments cannot
be added, edited or deleted as rows: operators act on them with Stop, Start, Rebuild, Delete,
Reconcile now and Mark error, and a refused action is reported per row instead of failing the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.timesince import timesince

from coderadmin.admin import ReadOnlyAdmin
from environments import image_services, services
from environments.models import Environment, EnvironmentEvent, Image, ImageTag
from environments.references import validate_tag
from environments.states import TransitionNotAllowed
from infrastructure.reconciler import reconcile

# The inline shows the newest events only: a long build log would make the page unusable.
INLINE_EVENTS = 200
MAX_REASON_LENGTH = 2000
# "Reconcile now" runs inside the request: keep it well under the web server's timeout.
ADMIN_SWEEP_BUDGET_SECONDS = 20


class EnvironmentEventFormSet(forms.BaseInlineFormSet):
    def get_queryset(self) -> QuerySet:
        return super().get_queryset().order_by("-time", "-id")[:INLINE_EVENTS]


class EnvironmentEventInline(admin.TabularInline):
    """The build log and state history, newest first, read-only."""

    model = EnvironmentEvent
    formset = EnvironmentEventFormSet
    fields = ("time", "type", "source", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = f"events (newest {INLINE_EVENTS})"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MarkErrorForm(forms.Form):
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to the owner as the environment's failure reason.",
    )


def _per_row(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    verb: str,
    act: Callable[[Environment], Any],
) -> None:
    """Run ``act`` on each environment; refusals are reported per row, the rest still run."""
    done: list[str] = []
    for env in queryset:
        try:
            act(env)
        except TransitionNotAllowed as exc:
            modeladmin.message_user(request, f"{env.owner}/{env.name}: {exc}", messages.WARNING)
        except ValidationError as exc:
            modeladmin.message_user(
                request, f"{env.owner}/{env.name}: {' '.join(exc.messages)}", messages.WARNING
            )
        except Environment.DoesNotExist:
            modeladmin.message_user(
                request, f"{env.owner}/{env.name}: it no longer exists.", messages.WARNING
            )
        else:
            done.append(f"{env.owner}/{env.name}")
    if done:
        modeladmin.message_user(request, f"{verb}: {', '.join(done)}.", messages.SUCCESS)


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "state", "cvm", "image_reference", "node_name", "age")
    list_filter = (
        "state",
        "cvm",
        ("image", admin.RelatedOnlyFieldListFilter),
        ("owner", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("name", "owner__username", "pod_name")
    list_select_related = ("owner", "image")
    ordering = ("-created_at",)
    inlines = (EnvironmentEventInline,)
    actions = ("stop", "start", "rebuild", "delete", "reconcile_now", "mark_error")
    fieldsets = (
        (None, {"fields": ("owner", "name", "state", "status_reason", "entrypoint")}),
        (
            "Image and resources",
            {"fields": ("image", "tag", "cpu_millicores", "memory_mib", "disk_gib", "gpu_count", "cvm")},
        ),
        (
            "Kubernetes",
            {
                "fields": (
                    "cvm_backend",
                    "namespace",
                    "pod_name",
                    "pvc_name",
                    "registry_secret_name",
                    "network_policy_name",
                    "node_name",
                    "generation",
                )
            },
        ),
        ("Timestamps", {"fields": ("created_at", "build_started_at", "running_at", "updated_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        """Every field: state and names change only through the services (the actions)."""
        return [name for fieldset in self.fieldsets for name in fieldset[1]["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="image", ordering="image__repository")
    def image_reference(self, env: Environment) -> str:
        return env.image_reference

    @admin.display(description="age", ordering="created_at")
    def age(self, env: Environment) -> str:
        return timesince(env.created_at, timezone.now())

    @admin.action(permissions=["change"], description="Stop selected environments")
    def stop(self, request: HttpRequest, queryset: QuerySet) -> None:
        _per_row(
            self,
            request,
            queryset,
            "Stopping",
            lambda env: services.environment_stop(env, actor=request.user, request=request),
        )

    @admin.action(permissions=["change"], description="Start selected environments")
    def start(self, request: HttpRequest, queryset: QuerySet) -> None:
        _per_row(
            self,
            request,
            queryset,
            "Starting",
            lambda env: services.environment_start(env, actor=request.user, request=request),
        )

    @admin.action(permissions=["change"], description="Rebuild selected environments")
    def rebuild(self, request: HttpRequest, queryset: QuerySet) -> None:
        _per_row(
            self,
            request,
            queryset,
            "Rebuilding",
            lambda env: services.environment_rebuild(env, actor=request.user, request=request),
        )

    @admin.action(permissions=["change"], description="Delete selected environments (cluster objects first)")
    def delete(self, request: HttpRequest, queryset: QuerySet) -> None:
        _per_row(
            self,
            request,
            queryset,
            "Deleting",
            lambda env: services.environment_delete(env, actor=request.user, request=request),
        )

    @admin.action(
        permissions=["change"], description="Reconcile now (one sweep of the whole cluster; select any row)"
    )
    def reconcile_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        report = reconcile(budget_seconds=ADMIN_SWEEP_BUDGET_SECONDS)
        level = messages.WARNING if report.errors or report.busy else messages.SUCCESS
        for line in report.lines():
            self.message_user(request, line, level)

    @admin.action(permissions=["change"], description="Mark selected environments as Error…")
    def mark_error(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """An intermediate page asks for the reason; the owner sees it as the failure reason."""
        form = MarkErrorForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            _per_row(
                self,
                request,
                queryset,
                "Marked as Error",
                lambda env: services.environment_mark_error(
                    env, reason=reason, actor=request.user, request=request
                ),
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Mark environments as Error",
            "opts": self.model._meta,
            "environments": list(queryset),
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "action": "mark_error",
        }
        return TemplateResponse(request, "admin/environments/environment/mark_error.html", context)


@admin.register(EnvironmentEvent)
class EnvironmentEventAdmin(ReadOnlyAdmin):
    """Every environment's build log and state history in one searchable, read-only list."""

    list_display = ("time", "environment", "owner", "type", "source", "message")
    list_filter = ("type", "source")
    search_fields = ("message", "environment__name", "environment__owner__username")
    list_select_related = ("environment__owner",)
    date_hierarchy = "time"
    ordering = ("-time", "-id")

    @admin.display(description="owner", ordering="environment__owner__username")
    def owner(self, event: EnvironmentEvent) -> str:
        return str(event.environment.owner)


class ImageTagInline(admin.TabularInline):
    """The stored tags, read-only: they are edited in the image form's Tags field (one service call)."""

    model = ImageTag
    fields = ("tag", "is_default")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ImageAdminForm(forms.ModelForm):
    """The image with its tags and write-only registry credentials.

    The password field never shows the stored value; typing one sets it (encrypted), leaving it blank
    keeps what is stored, and "remove" clears the credentials.
    """

    tags = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Tags or digests members may choose, separated by spaces, commas or new lines.",
    )
    default_tag = forms.CharField(
        max_length=200, required=False, help_text="One of the tags; blank: the first."
    )
    registry_password = forms.CharField(
        label="Registry password or token",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown. Leave blank to keep the stored one.",
    )
    clear_credentials = forms.BooleanField(label="Remove the stored registry credentials", required=False)

    class Meta:
        model = Image
        fields = image_services.IMAGE_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            stored = list(self.instance.tags.order_by("-is_default", "tag"))
            self.initial.setdefault("tags", "\n".join(t.tag for t in stored))
            self.initial.setdefault("default_tag", next((t.tag for t in stored if t.is_default), ""))

    def clean_tags(self) -> list[str]:
        tags = list(dict.fromkeys(self.cleaned_data["tags"].replace(",", " ").split()))
        if not tags:
            raise ValidationError("Give at least one tag.")
        errors = []
        for tag in tags:
            try:
                validate_tag(tag)
            except ValidationError as exc:
                errors.extend(f"“{tag}”: {message}" for message in exc.messages)
        if errors:
            raise ValidationError(errors)
        return tags

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        default, tags = data.get("default_tag"), data.get("tags") or []
        if default and tags and default not in tags:
            self.add_error("default_tag", "The default tag must be one of the tags.")
        # The model's own check (user name and password go together) runs after this, on the instance.
        if data.get("clear_credentials"):
            data["registry_username"] = ""
            self.instance.registry_password = ""
        elif data.get("registry_password"):
            self.instance.registry_password = data["registry_password"]
        return data


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    form = ImageAdminForm
    list_display = (
        "repository",
        "default_tag",
        "enabled",
        "deprecated",
        "has_registry_credentials",
        "environment_count",
        "updated_at",
    )
    list_filter = ("enabled", "deprecated")
    search_fields = ("repository", "description")
    inlines = (ImageTagInline,)
    actions = ("enable", "disable")
    fieldsets = (
        (None, {"fields": ("repository", "description", "tags", "default_tag", "enabled", "deprecated")}),
        ("Inside the image", {"fields": ("username", "run_as_uid", "command")}),
        ("Minimum resources", {"fields": ("min_cpu_millicores", "min_memory_mib", "min_disk_gib")}),
        ("Registry credentials", {"fields": ("registry_username", "registry_password", "clear_credentials")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(environment_count=Count("environments"))
            .prefetch_related("tags")
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Images are retired by disabling them: environments keep pointing at them."""
        return False

    @admin.display(description="default tag")
    def default_tag(self, image: Image) -> str:
        return next((t.tag for t in image.tags.all() if t.is_default), "")

    @admin.display(description="credentials", boolean=True)
    def has_registry_credentials(self, image: Image) -> bool:
        return image.has_registry_credentials

    @admin.display(description="environments", ordering="environment_count")
    def environment_count(self, image: Image) -> int:
        return image.environment_count

    def save_model(self, request: HttpRequest, obj: Image, form: ImageAdminForm, change: bool) -> None:
        data = form.cleaned_data
        image_data = image_services.ImageData(
            tags=tuple(data["tags"]),
            default_tag=data["default_tag"],
            **{name: data[name] for name in ImageAdminForm.Meta.fields},
        )
        password = data["registry_password"]
        if change:
            saved = image_services.image_update(
                obj,
                actor=request.user,
                data=image_data,
                registry_password=password,
                clear_credentials=data["clear_credentials"],
                request=request,
            )
        else:
            saved = image_services.image_create(
                actor=request.user, data=image_data, registry_password=password, request=request
            )
        obj.pk = saved.pk

    @admin.action(permissions=["change"], description="Enable selected images")
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        for image in queryset:
            image_services.image_set_enabled(image, actor=request.user, enabled=True, request=request)
        self.message_user(request, f"Enabled {queryset.count()} image(s).", messages.SUCCESS)

    @admin.action(permissions=["change"], description="Disable selected images")
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        for image in queryset:
            image_services.image_set_enabled(image, actor=request.user, enabled=False, request=request)
        self.message_user(request, f"Disabled {queryset.count()} image(s).", messages.SUCCESS)
