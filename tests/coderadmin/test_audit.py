"""The audit log: what ``audit_record`` stores, client addresses, and that entries cannot change."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import RequestFactory

from coderadmin.audit import audit_record, client_ip
from coderadmin.models import AuditEntry
from coderadmin.roles import Role, user_role
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_record_with_model_target_keeps_label_pk_and_text(admin_user):
    target = member(username="zoe")
    entry = audit_record(
        "user.role_change",
        actor=admin_user,
        target=target,
        before={"role": "Member"},
        after={"role": "Auditor"},
    )
    entry.refresh_from_db()
    assert (entry.target_type, entry.target_id, entry.target_repr) == (
        "coderadmin.user",
        str(target.pk),
        "zoe",
    )
    assert (entry.actor, entry.actor_name) == (admin_user, "ada")
    assert (entry.before, entry.after) == ({"role": "Member"}, {"role": "Auditor"})
    assert entry.created_at is not None
    assert "ada user.role_change zoe" in str(entry)


def test_record_with_string_target_and_no_actor():
    entry = audit_record("auth.login_failed", target="someone", message="Wrong password.")
    assert (entry.target_type, entry.target_id, entry.target_repr) == ("", "", "someone")
    assert entry.actor is None and entry.actor_name == ""
    assert entry.message == "Wrong password."


def test_values_that_are_not_json_are_stored_as_text():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    entry = audit_record("x.test", after={"at": when, "id": ident, "n": 3, "items": [1, 2]})
    entry.refresh_from_db()
    assert entry.after == {"at": "2026-01-02T03:04:05Z", "id": str(ident), "n": 3, "items": [1, 2]}


def test_actor_and_address_come_from_the_request(admin_user):
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.7")
    request.user = admin_user
    entry = audit_record("x.test", request=request)
    assert entry.actor == admin_user
    assert entry.ip_address == "192.0.2.7"


def test_entries_cannot_be_changed_or_deleted():
    entry = audit_record("x.test", target="t")
    entry.message = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(message="rewritten")
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    entry.refresh_from_db()
    assert entry.message == ""


def test_removing_a_user_keeps_their_entries(admin_user):
    target = member(username="gone")
    audit_record("x.test", actor=target, target=target)
    target.delete()
    entry = AuditEntry.objects.get(action="x.test")
    assert entry.actor is None
    assert (entry.actor_name, entry.target_repr) == ("gone", "gone")


def test_audit_log_is_read_only_in_django_admin(client):
    root = member(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    entry = audit_record("x.test", target="t")
    assert client.get("/admin/coderadmin/auditentry/").status_code == 200
    assert client.get("/admin/coderadmin/auditentry/add/").status_code == 403
    assert client.post(f"/admin/coderadmin/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "192.0.2.1", "203.0.113.9", "192.0.2.1"),  # no proxy trusted: the header is ignored
        (1, "10.0.0.2", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.2", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # left entries are client-made
        (2, "10.0.0.2", "198.51.100.1, 203.0.113.9", "198.51.100.1"),
        (2, "10.0.0.2", "203.0.113.9", "10.0.0.2"),  # fewer hops than promised: use the peer
        (1, "10.0.0.2", "not-an-ip", None),
        (0, "2001:db8::1", "", "2001:db8::1"),
    ],
)
def test_client_ip_honours_trusted_proxy_count(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_client_ip_without_request():
    assert client_ip(None) is None


def test_user_edits_in_django_admin_are_audited(client):
    root = member(username="root", is_staff=True, is_superuser=True)
    target = member(username="edited", date_joined=datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC))
    client.force_login(root)
    page = client.get(f"/admin/coderadmin/user/{target.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions")
    }
    data.update(
        email="new@example.com",
        date_joined_0=target.date_joined.strftime("%Y-%m-%d"),
        date_joined_1="12:00:00",
        groups=[Group.objects.get(name="Auditor").pk],
        is_active="on",
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = client.post(f"/admin/coderadmin/user/{target.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(action="user.update")
    assert entry.actor == root
    assert entry.before == {"email": "edited@example.com", "groups": ["Member"]}
    assert entry.after == {"email": "new@example.com", "groups": ["Auditor"]}
    target.refresh_from_db()
    assert user_role(target) is Role.AUDITOR
    assert entry.message == "Django admin"
