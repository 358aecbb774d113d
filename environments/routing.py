"""WebSocket routes (served by Channels through ``coderadmin.asgi``)."""

from django.urls import path

from environments.consumers import TerminalConsumer

websocket_urlpatterns = [
    path("ws/environments/<int:pk>/terminal/", TerminalConsumer.as_asgi(), name="environment-terminal"),
]
