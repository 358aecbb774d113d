"""Values every page template uses: the user's role, what they may open, the cluster mode."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from coderadmin.roles import can_manage, user_role


def ui(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    role = user_role(user)
    return {
        "user_role": role,
        "can_manage": can_manage(user),
        "cluster_simulated": settings.CLUSTER_MODE == "simulated",
    }
