"""Each kind of visitor against each class of page: who gets in, who is sent to sign in, who gets 403."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

OK, LOGIN, FORBIDDEN = 200, "login", 403

# page -> expected outcome per visitor kind
MATRIX = {
    "/": {
        "anonymous": LOGIN,
        "member": OK,
        "auditor": OK,
        "manager": OK,
        "admin": OK,
        "staff": OK,
        "superuser": OK,
    },
    "/manage/": {
        "anonymous": LOGIN,
        "member": FORBIDDEN,
        "auditor": FORBIDDEN,
        "manager": OK,
        "admin": OK,
        "staff": FORBIDDEN,
        "superuser": OK,
    },
    "/manage/users/": {
        "anonymous": LOGIN,
        "member": FORBIDDEN,
        "auditor": FORBIDDEN,
        "manager": OK,
        "admin": OK,
        "staff": FORBIDDEN,
        "superuser": OK,
    },
    "/accounts/password/": {
        "anonymous": LOGIN,
        "member": OK,
        "auditor": OK,
        "manager": OK,
        "admin": OK,
        "staff": OK,
        "superuser": OK,
    },
    "/admin/": {
        "anonymous": "admin-login",
        "member": "admin-login",
        "auditor": "admin-login",
        "manager": "admin-login",
        "admin": "admin-login",
        "staff": OK,
        "superuser": OK,
    },
}
CASES = [(page, kind, expected) for page, row in MATRIX.items() for kind, expected in row.items()]


@pytest.mark.parametrize(("page", "kind", "expected"), CASES, ids=[f"{p}-{k}" for p, k, _ in CASES])
def test_role_matrix(clients, page, kind, expected):
    response = clients[kind].get(page)
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    elif expected == "admin-login":
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    else:
        assert response.status_code == expected


def test_forbidden_page_is_our_styled_403(clients):
    response = clients["member"].get("/manage/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "You may not open this page" in body
    assert "/static/css/app.css" in body


def test_missing_page_is_our_styled_404(clients):
    response = clients["member"].get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_navigation_shows_what_the_role_may_open(clients):
    member_page = clients["member"].get("/").content.decode()
    assert 'href="/manage/"' not in member_page
    assert 'href="/admin/"' not in member_page
    assert "Member" in member_page

    admin_page = clients["admin"].get("/").content.decode()
    assert 'href="/manage/"' in admin_page
    assert "Site admin" in admin_page
    assert 'href="/admin/"' not in admin_page  # a site admin without staff status

    staff_page = clients["staff"].get("/").content.decode()
    assert 'href="/admin/"' in staff_page
    assert 'href="/manage/"' not in staff_page


def test_home_is_the_environments_page(clients):
    body = clients["member"].get("/").content.decode()
    assert "<h1>Environments</h1>" in body
    assert "No environments yet." in body
    assert 'href="/environments/new/"' in body


def test_manage_landing_links_to_users_and_infrastructure(clients):
    body = clients["manager"].get("/manage/").content.decode()
    assert 'href="/manage/users/"' in body
    assert 'href="/manage/infrastructure/"' in body


def test_shell_loads_htmx_from_our_static_files_with_csrf_header(clients):
    body = clients["member"].get("/").content.decode()
    assert '<script src="/static/django_htmx/htmx-2.min.js" defer></script>' in body
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert "<script>" not in body
    assert " style=" not in body
    assert "http://" not in body and "https://" not in body  # no CDN, no external fonts


def test_logout_is_a_post_form_in_the_user_menu(clients):
    body = clients["member"].get("/").content.decode()
    assert '<form method="post" action="/accounts/logout/">' in body


def test_simulated_cluster_badge_follows_the_cluster_mode(clients, settings):
    settings.CLUSTER_MODE = "simulated"
    assert "Simulated cluster" in clients["member"].get("/").content.decode()
    settings.CLUSTER_MODE = "kubeconfig"
    assert "Simulated cluster" not in clients["member"].get("/").content.decode()


def test_flash_messages_are_shown(admin_client, member_user):
    response = admin_client.post(f"/manage/users/{member_user.pk}/deactivate/", follow=True)
    assert "Deactivated mia" in response.content.decode()
