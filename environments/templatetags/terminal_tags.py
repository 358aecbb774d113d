"""``{% connect_panel environment %}``: the Connect panel of a Running environment's page."""

from __future__ import annotations

from typing import Any

from django import template

from environments import terminal
from environments.states import State
from environments.terminal_views import can_open_terminal

register = template.Library()


@register.inclusion_tag("environments/_connect.html", takes_context=True)
def connect_panel(context: dict[str, Any], environment: Any) -> dict[str, Any]:
    """Open terminal (owner and site admins), the operator's kubectl command and what to expect."""
    user = context.get("user")
    shown = environment.state == State.RUNNING and bool(environment.pod_name)
    return {
        "environment": environment,
        "shown": shown,
        "can_open": shown and user is not None and can_open_terminal(user, environment),
        "target": terminal.exec_target(environment) if shown else None,
        "expect": terminal.what_to_expect(environment) if shown else [],
    }
