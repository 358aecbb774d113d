"""The terminal page (``/environments/<pk>/terminal/``): a full-window xterm.js bound to the WebSocket.

The page itself grants nothing: the WebSocket consumer authorises every connection. The page is
shown to the owner and to site admins (others get the same 404/403 as elsewhere).

xterm.js adds ``<style>`` elements at run time, which ``style-src 'self'`` forbids; this page's
policy adds a per-response nonce that ``static/js/terminal.js`` puts on those elements, so the
policy stays free of ``'unsafe-inline'``.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from coderadmin.roles import is_site_admin
from environments import selectors, terminal
from environments.routing import websocket_urlpatterns
from environments.states import State

STYLE_SOURCE = "style-src 'self'"


def can_open_terminal(user: object, environment: object) -> bool:
    """The owner, or a site admin (whose session is shown to the owner)."""
    return environment.owner_id == getattr(user, "pk", None) or is_site_admin(user)


def terminal_policy(nonce: str) -> str:
    """The site's Content-Security-Policy with the style nonce of this response."""
    return settings.CONTENT_SECURITY_POLICY.replace(STYLE_SOURCE, f"{STYLE_SOURCE} 'nonce-{nonce}'")


@require_GET
@login_required
def environment_terminal(request: HttpRequest, pk: int) -> HttpResponse:
    environment = selectors.environment_get(user=request.user, pk=pk)
    if not can_open_terminal(request.user, environment):
        raise PermissionDenied("Only the environment's owner can open its terminal.")
    nonce = secrets.token_urlsafe(16)
    socket_path = "/" + str(websocket_urlpatterns[0].pattern).replace("<int:pk>", str(environment.pk))
    context = {
        "environment": environment,
        "user_name": environment.image.username,
        "running": environment.state == State.RUNNING,
        "socket_path": socket_path,
        "style_nonce": nonce,
        "admin_session": environment.owner_id != request.user.pk,
        "kubectl": terminal.exec_target(environment).kubectl if environment.pod_name else "",
    }
    response = render(request, "environments/terminal.html", context)
    response["Content-Security-Policy"] = terminal_policy(nonce)
    return response
