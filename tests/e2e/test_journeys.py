"""The product as its users see it: five journeys in Debian's Chromium against the live server, the
simulated cluster (fast clock), a real Celery worker and the watcher."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from coderadmin.roles import Role
from environments.models import Environment
from environments.states import State
from infrastructure.models import InfrastructureSettings
from tests.e2e.conftest import PLAIN, SYSTEMD, UNPULLABLE, make_account, sign_in
from tests.environments import cluster_support as cs

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAIN_NAV = "nav[aria-label='Main']"


def state_badge(page: Page):
    return page.locator("#environment-live .badge.state")


def mark_page(page: Page) -> None:
    """A flag that only survives while the document does: proves that no reload happened."""
    page.evaluate("window.journeyMarker = 'same document'")


def assert_same_document(page: Page) -> None:
    assert page.evaluate("window.journeyMarker") == "same document"


def create_environment(page: Page, name: str, reference: str, *, cvm: bool) -> None:
    page.goto("/environments/new/")
    page.get_by_label("Name").fill(name)
    value = page.locator("#id_image_tag option", has_text=reference).first.get_attribute("value")
    page.get_by_label("Image and tag").select_option(value)
    checkbox = page.get_by_label("Run as Container-based Virtual Machine")
    checkbox.set_checked(cvm)
    page.get_by_role("button", name="Create environment").click()
    page.wait_for_url(re.compile(r"/environments/\d+/$"))


# ---------------------------------------------------------------------------------------------- 1


def test_journey_1_admin_checks_the_cluster_and_turns_cvms_on(page: Page, product, shot):
    """Demo is a mixed cluster: the Amazon Linux 2 node (kernel 4.14) and the COS node cannot run
    CVMs, so the checks fail and the admin turns CVMs on with the audited override."""
    product("demo")
    make_account("ada", Role.SITE_ADMIN)
    sign_in(page, "ada")
    page.locator(MAIN_NAV).get_by_role("link", name="Manage").click()
    page.get_by_role("link", name="Infrastructure").first.click()
    expect(page.get_by_role("heading", name="Infrastructure", level=1)).to_be_visible()
    shot(page, "infrastructure-page")

    page.get_by_role("button", name="Run checks").click()
    expect(page.get_by_role("heading", name="Readiness checks", level=1)).to_be_visible()
    failing = page.locator("tr.check-fail", has_text="legacy-al2-c1")
    expect(failing).to_be_visible(timeout=30_000)
    expect(failing.locator("td.reason")).to_contain_text("4.14")
    shot(page, "failing-node-explained")

    page.goto("/manage/infrastructure/guides/")
    gke = page.locator("section#gke")
    gke.get_by_label("Cluster name").fill("dev-cluster")
    gke.get_by_label("Region or zone").fill("europe-west1")
    gke.get_by_role("button", name="Show the commands").click()
    command = page.locator("section#gke pre").first
    expect(command).to_contain_text("gcloud container")
    expect(command).to_contain_text("UBUNTU_CONTAINERD")
    shot(page, "gke-command")

    page.goto("/manage/infrastructure/")
    page.get_by_role("switch", name="Enable Container-Based Virtual Machines").check()
    page.wait_for_url("**/manage/infrastructure/cvm/enable/")
    page.get_by_role("button", name="Run checks and turn CVMs on").click()
    refused = page.locator(".outcome-refused")
    expect(refused).to_be_visible(timeout=30_000)
    expect(refused).to_contain_text("legacy-al2-c1")
    shot(page, "enable-refused")
    refused.get_by_role("checkbox").check()
    refused.get_by_role("button", name="Turn CVMs on anyway").click()
    expect(page.locator("#cvm-toggle")).to_contain_text("CVMs are on")
    shot(page, "cvms-on")
    assert InfrastructureSettings.load().cvm_enabled


# ---------------------------------------------------------------------------------------------- 2


def test_journey_2_member_builds_a_cvm_and_runs_its_lifecycle(page: Page, product, shot):
    product("demo", scale=0.1)
    cs.configure(cvm=True)
    cs.image(SYSTEMD)
    make_account("maria", Role.MEMBER)
    sign_in(page, "maria")
    expect(page.locator(MAIN_NAV).get_by_role("link", name="Environments")).to_be_visible()
    expect(page.locator(MAIN_NAV).get_by_role("link", name="Manage")).to_have_count(0)
    shot(page, "signed-in-without-manage")

    create_environment(page, "devbox", SYSTEMD, cvm=True)
    mark_page(page)
    log = page.locator("#environment-live ol.log li")
    expect(log.first).to_be_visible()
    early = log.count()
    shot(page, "building")
    expect(state_badge(page)).to_have_text("Running", timeout=45_000)
    assert log.count() > early, "the build log did not grow while the page was open"
    expect(page.locator("#environment-live ol.log")).to_contain_text("entrypoint: /sbin/init")
    expect(page.locator("dl.details")).to_contain_text("/sbin/init")
    assert_same_document(page)
    shot(page, "running")

    with page.context.expect_page() as opened:
        page.locator("#open-terminal").click()
    terminal = opened.value
    expect(terminal.locator("#terminal-status")).to_have_text("Connected to devbox as coder.", timeout=15_000)
    rows = terminal.locator(".xterm-rows")
    expect(rows).to_contain_text("coder@", timeout=15_000)
    terminal.keyboard.type("docker ps\n")
    expect(rows).to_contain_text("CONTAINER ID", timeout=10_000)
    shot(terminal, "terminal-docker-ps")
    terminal.close()

    page.locator("#action-stop").click()
    expect(state_badge(page)).to_have_text("Off", timeout=30_000)
    shot(page, "off")
    page.locator("#action-start").click()
    expect(state_badge(page)).to_have_text("Running", timeout=45_000)
    shot(page, "started")
    env = Environment.objects.get(name="devbox")
    generation = env.generation
    page.locator("#action-rebuild").click()
    expect(state_badge(page)).not_to_have_text("Running")
    expect(state_badge(page)).to_have_text("Running", timeout=45_000)
    assert Environment.objects.get(pk=env.pk).generation > generation
    assert_same_document(page)
    shot(page, "rebuilt")

    page.locator("#action-delete").click()
    page.get_by_role("button", name="Delete devbox and its disk").click()
    page.wait_for_url("**/environments/")
    expect(page.locator(".messages")).to_contain_text("Deleting devbox")
    shot(page, "deleting")
    cs.eventually(lambda: not Environment.objects.filter(pk=env.pk).exists(), what="row deleted")
    expect(page.get_by_role("link", name="devbox")).to_have_count(0, timeout=15_000)
    shot(page, "deleted")


# ---------------------------------------------------------------------------------------------- 3


def test_journey_3_unpullable_images_show_error_with_the_reason_live(page: Page, product, shot):
    product("demo")
    cs.configure(cvm=True)
    cs.image(UNPULLABLE)
    make_account("mila", Role.MEMBER)
    sign_in(page, "mila")

    create_environment(page, "cvmbad", UNPULLABLE, cvm=True)
    mark_page(page)
    expect(state_badge(page)).to_have_text("Error", timeout=10_000)
    expect(page.locator(".reason-error")).to_contain_text(f"pull image {UNPULLABLE}:1")
    assert_same_document(page)
    shot(page, "cvm-error")

    create_environment(page, "stdbad", UNPULLABLE, cvm=False)
    mark_page(page)
    expect(state_badge(page)).to_have_text("Error", timeout=10_000)
    expect(page.locator(".reason-error")).to_contain_text(f"image {UNPULLABLE}:1 could not be pulled")
    assert_same_document(page)
    shot(page, "standard-error")


# ---------------------------------------------------------------------------------------------- 4


def test_journey_4_other_members_environment_is_not_found_and_no_cvm_while_off(page: Page, product, shot):
    product("demo")
    cs.configure(cvm=False)
    cs.image(PLAIN)
    owner = make_account("olga", Role.MEMBER)
    make_account("nils", Role.MEMBER)
    theirs = cs.wait_state(cs.create(owner, cs.image("ghcr.io/coderadmin/example-systemd")), State.RUNNING)
    sign_in(page, "nils")

    response = page.goto(f"/environments/{theirs.pk}/")
    assert response is not None
    assert response.status == 404
    expect(page.locator("main")).to_contain_text("not found", ignore_case=True)
    expect(page.locator("main")).not_to_contain_text(theirs.name)
    shot(page, "not-found")

    page.goto("/environments/new/")
    checkbox = page.get_by_label("Run as Container-based Virtual Machine")
    expect(checkbox).to_be_disabled()
    expect(page.locator(".checkbox-field")).to_contain_text("off", ignore_case=True)
    shot(page, "cvm-not-offered")


# ---------------------------------------------------------------------------------------------- 5


def press_until_focused(page: Page, selector: str, limit: int = 60) -> None:
    """Tab through the page until the element is focused (what a keyboard user does)."""
    target = page.locator(selector)
    for _ in range(limit):
        if target.evaluate("node => node === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus with Tab")


def test_journey_5_keyboard_only(page: Page, product, shot):
    product("demo")
    cs.configure()
    cs.image(PLAIN)
    make_account("kai", Role.MEMBER)
    sign_in(page, "kai")
    page.goto("/environments/new/")

    press_until_focused(page, "#id_name")
    page.keyboard.type("Not A Name")
    press_until_focused(page, "button[type=submit].primary")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    summary = page.locator("#form-errors[role=alert]")
    expect(summary).to_be_visible()
    name = page.locator("#id_name")
    expect(name).to_have_attribute("aria-invalid", "true")
    described = name.get_attribute("aria-describedby") or ""
    error_text = " ".join(page.locator(f"#{ident}").inner_text() for ident in described.split())
    assert "lowercase" in error_text.lower() or "letter" in error_text.lower(), error_text
    shot(page, "errors-announced")

    press_until_focused(page, "#id_name")
    page.keyboard.press("Control+A")
    page.keyboard.type("keyboard")
    press_until_focused(page, "#id_image_tag")
    page.keyboard.press("ArrowDown")
    press_until_focused(page, "button[type=submit].primary")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/environments/\d+/$"))
    expect(state_badge(page)).to_have_text("Running", timeout=30_000)
    shot(page, "running")

    press_until_focused(page, "#action-stop")
    page.keyboard.press("Space")
    expect(state_badge(page)).to_have_text("Off", timeout=30_000)
    press_until_focused(page, "#action-start")
    page.keyboard.press("Enter")
    expect(state_badge(page)).to_have_text("Running", timeout=30_000)
    shot(page, "started-by-keyboard")
