"""Manage > Audit: who may read it, the filters, paging, and the streamed CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from coderadmin import ops_views
from coderadmin.audit import audit_record
from coderadmin.models import AuditEntry
from coderadmin.ops_views import ENTRIES_PER_PAGE, safe_cell
from tests.factories import member

AUDIT = reverse("manage-audit")
EXPORT = reverse("manage-audit-export")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "status"),
    [("admin", 200), ("manager", 200), ("auditor", 200), ("superuser", 200), ("member", 403), ("staff", 403)],
)
def test_who_may_read_and_export_the_log(clients, kind, status):
    assert clients[kind].get(AUDIT).status_code == status
    assert clients[kind].get(EXPORT).status_code == status


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_sign_in(clients):
    response = clients["anonymous"].get(AUDIT)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.fixture
def history(db):
    alice, bob = member(username="alice"), member(username="bob")
    now = timezone.now()
    old = AuditEntry.objects.create(
        action="user.create",
        actor=alice,
        actor_name="alice",
        target_type="coderadmin.user",
        target_id=str(bob.pk),
        target_repr="bob",
        created_at=now - timedelta(days=10),
    )
    return {
        "old": old,
        "stop": audit_record("environment.stop", actor=bob, target="bob/web"),
        "delete": audit_record("environment.delete", actor=alice, target="alice/db"),
    }


def _shown(client, **query: str) -> set[int]:
    response = client.get(AUDIT, query)
    assert response.status_code == 200
    return {entry.pk for entry in response.context["page"]}


@pytest.mark.django_db
def test_filters_by_who_action_target_and_time(clients, history):
    auditor = clients["auditor"]
    ids = {name: entry.pk for name, entry in history.items()}
    assert _shown(auditor, who="bob") == {ids["stop"]}
    assert _shown(auditor, action="environment.delete") == {ids["delete"]}
    assert _shown(auditor, action="environment.") == {ids["stop"], ids["delete"]}
    assert _shown(auditor, target="alice/db") == {ids["delete"]}
    assert _shown(auditor, target=str(history["old"].target_id)) == {ids["old"]}
    today = timezone.localdate().isoformat()
    assert _shown(auditor, since=today, action="user.create") == set()
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert _shown(auditor, until=yesterday) == {ids["old"]}
    ten_days_ago = (timezone.localdate() - timedelta(days=10)).isoformat()
    assert _shown(auditor, since=ten_days_ago, until=ten_days_ago) == {ids["old"]}


@pytest.mark.django_db
def test_an_inverted_time_range_is_refused(clients, history):
    response = clients["auditor"].get(AUDIT, {"since": "2026-02-01", "until": "2026-01-01"})
    assert response.status_code == 400
    assert "start date is after the end date" in response.content.decode()


@pytest.mark.django_db
def test_the_log_is_paged_newest_first_and_pages_keep_the_filters(clients):
    for number in range(ENTRIES_PER_PAGE + 5):
        audit_record("test.bulk", target=f"t{number}")
    audit_record("other.action", target="x")
    response = clients["auditor"].get(AUDIT, {"action": "test.bulk"})
    page = response.context["page"]
    assert len(page.object_list) == ENTRIES_PER_PAGE
    assert page.object_list[0].target_repr == f"t{ENTRIES_PER_PAGE + 4}"
    assert "action=test.bulk&amp;page=2" in response.content.decode()
    second = clients["auditor"].get(AUDIT, {"action": "test.bulk", "page": 2}).context["page"]
    assert [e.target_repr for e in second] == [f"t{n}" for n in range(4, -1, -1)]


def _csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.django_db
def test_the_export_streams_the_filtered_rows(clients, history):
    rows = _csv(clients["manager"].get(EXPORT, {"action": "environment."}))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["time", "actor", "action", "target_type"]
    assert sorted(row[2] for row in body) == ["environment.delete", "environment.stop"]


@pytest.mark.django_db
def test_the_export_is_itself_audited(clients):
    _csv(clients["auditor"].get(EXPORT, {"who": "nobody"}))
    entry = AuditEntry.objects.get(action="audit.export")
    assert entry.actor_name == "k-auditor"
    assert entry.after == {"filters": {"who": "nobody"}}


@pytest.mark.django_db
def test_the_export_reads_rows_in_chunks(clients, monkeypatch):
    """A large range is never loaded at once: the rows come from a chunked iterator."""
    chunk_sizes = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        chunk_sizes.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    monkeypatch.setattr(ops_views, "EXPORT_CHUNK", 10)
    for number in range(35):
        audit_record("test.bulk", target=f"t{number}")
    response = clients["auditor"].get(EXPORT, {"action": "test.bulk"})
    assert len(_csv(response)) == 36
    assert chunk_sizes == [10]


@pytest.mark.django_db
def test_export_cells_cannot_run_as_spreadsheet_formulas(clients):
    audit_record("environment.create", target='=HYPERLINK("http://evil.example","x")', message="+1-2")
    rows = _csv(clients["auditor"].get(EXPORT, {"action": "environment.create"}))
    target, message = rows[1][5], rows[1][7]
    assert target.startswith("'=HYPERLINK")
    assert message == "'+1-2"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-3", "'-3"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        (None, ""),
    ],
)
def test_safe_cell(raw, safe):
    assert safe_cell(raw) == safe


@pytest.mark.django_db
def test_changes_are_exported_as_json(clients):
    audit_record("user.update", target="x", before={"email": "a@x"}, after={"email": "b@x"})
    rows = _csv(clients["auditor"].get(EXPORT, {"action": "user.update"}))
    assert rows[1][8:] == ['{"email": "a@x"}', '{"email": "b@x"}']


@pytest.mark.django_db
def test_the_manage_page_links_to_audit_and_status(clients):
    page = clients["manager"].get(reverse("manage")).content.decode()
    assert f'href="{AUDIT}"' in page
    assert f'href="{reverse("manage-status")}"' in page
