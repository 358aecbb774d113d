"""Labels and annotations the product puts on cluster objects. Stable names: never change them,
the watcher and the reconciler find our objects by them."""

from __future__ import annotations

APP_NAME = "coderadmin"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_ENVIRONMENT_ID = "coderadmin.dev/environment-id"

COMPONENT_ENVIRONMENT = "environment"

ANNOTATION_OWNER = "coderadmin.dev/owner"
ANNOTATION_ENVIRONMENT_NAME = "coderadmin.dev/environment-name"
# The environment's build generation on its pod: a pod of an older generation is stale.
ANNOTATION_GENERATION = "coderadmin.dev/generation"

# Every object of ours carries these; list by this selector.
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={APP_NAME}"


def environment_labels(environment_id: int) -> dict[str, str]:
    return {
        LABEL_NAME: APP_NAME,
        LABEL_MANAGED_BY: APP_NAME,
        LABEL_COMPONENT: COMPONENT_ENVIRONMENT,
        LABEL_ENVIRONMENT_ID: str(environment_id),
    }


def environment_selector(environment_id: int) -> str:
    return f"{MANAGED_SELECTOR},{LABEL_ENVIRONMENT_ID}={environment_id}"
