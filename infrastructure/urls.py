"""Manage > Admin > Infrastructure, mounted at ``manage/infrastructure/``."""

from django.urls import path

from infrastructure import views

urlpatterns = [
    path("", views.infrastructure, name="infrastructure"),
    path("settings/", views.settings_save, name="infrastructure-settings"),
    path("cvm/", views.cvm_toggle, name="infrastructure-cvm"),
    path("cvm/enable/", views.cvm_enable, name="infrastructure-cvm-enable"),
    path("cvm/override/", views.cvm_override, name="infrastructure-cvm-override"),
    path("checks/", views.checks_run, name="infrastructure-checks-run"),
    path("checks/<int:pk>/", views.report_detail, name="infrastructure-report"),
    path("namespace/", views.namespace_create, name="infrastructure-namespace-create"),
    path("guides/", views.guides_page, name="infrastructure-guides"),
]
