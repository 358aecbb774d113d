from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from coderadmin import ops_views, views
from coderadmin.auth import AdminLoginForm, RateLimitedAuthenticationForm
from environments import views as environment_views

admin.site.login_form = AdminLoginForm
admin.site.site_header = "coderadmin administration"

urlpatterns = [
    # The front page is the environments list (also at /environments/).
    path("", environment_views.environment_list, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            authentication_form=RateLimitedAuthenticationForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", views.AuditedPasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("manage/", views.manage_index, name="manage"),
    path("manage/infrastructure/", include("infrastructure.urls")),
    path("manage/users/", views.users, name="manage-users"),
    path("manage/users/<int:pk>/", views.user_detail, name="manage-user"),
    path("manage/users/<int:pk>/password/", views.user_password, name="manage-user-password"),
    path("manage/users/<int:pk>/deactivate/", views.user_deactivate, name="manage-user-deactivate"),
    path("manage/users/<int:pk>/reactivate/", views.user_reactivate, name="manage-user-reactivate"),
    path("manage/users/<int:pk>/delete/", views.user_delete, name="manage-user-delete"),
    path("manage/audit/", ops_views.audit_page, name="manage-audit"),
    path("manage/audit/export.csv", ops_views.audit_export, name="manage-audit-export"),
    path("manage/status/", ops_views.system_status, name="manage-status"),
    path("", include("environments.urls")),
    path("admin/", admin.site.urls),
]
