"""Routes of the environments pages (/environments/) and the Images pages (/images/).

Included at the site root; the two namespaces are ``environments`` and ``images``.
"""

from django.urls import include, path

from environments import terminal_views, views

environment_patterns = [
    path("", views.environment_list, name="list"),
    path("new/", views.environment_create, name="create"),
    path("<int:pk>/", views.environment_detail, name="detail"),
    path("<int:pk>/live/", views.environment_live, name="live"),
    path("<int:pk>/terminal/", terminal_views.environment_terminal, name="terminal"),
    path("<int:pk>/delete/", views.environment_delete, name="delete"),
    path("<int:pk>/rebuild/options/", views.environment_rebuild_options, name="rebuild-options"),
    path("<int:pk>/<slug:action>/", views.environment_action, name="action"),
]

image_patterns = [
    path("", views.image_list, name="list"),
    path("new/", views.image_create, name="create"),
    path("<int:pk>/", views.image_edit, name="edit"),
    path("<int:pk>/enable/", views.image_enable, name="enable"),
    path("<int:pk>/disable/", views.image_disable, name="disable"),
]

urlpatterns = [
    path("environments/", include((environment_patterns, "environments"))),
    path("images/", include((image_patterns, "images"))),
]
