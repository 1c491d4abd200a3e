"""Real Chromium against a real OpenID Connect provider (oidc-provider-mock, its own process):
sign-in through the provider's form, three people in three browser contexts with their roles,
sign-out; no sign-in without [auth], and a [classroom] without [auth] is a configuration error; a
broken [auth] is one clear message, not a traceback; a role needs a verified e-mail; the class's
allow-list keeps an outsider out; a crafted display name is text on every page, no image, no link."""

import http.server
import threading
import tomllib

import pytest

from mnist_core.jobs.ray.settings import ADDRESS_ENV
from mnist_core.jobs.store import RunStore
from mnist_core.learn.config import TrainConfig
from support.axe import blocking_violations
from support.browser import Server, free_port
from support.oidc import (
    TEACHER,
    TEACHER_NAME,
    SignInServer,
    new_page,
    provider,  # noqa: F401  (fixture)
    sidebar_identity,
    signed_in_page,
    signin_server,  # noqa: F401  (fixture)
    write_secrets,
)


def assert_no_traceback(page):
    assert page.get_by_test_id("stException").count() == 0
    assert "Traceback" not in page.locator("body").inner_text()


def test_sign_in_screen_then_two_learners_and_a_teacher(browser, signin_server):  # noqa: F811
    page = new_page(browser)
    page.goto(signin_server.url)
    page.get_by_role("button", name="Sign in").wait_for()
    page.get_by_text("Sign in with your school account").wait_for()
    # the app does not run for a signed-out visitor: no pages, no runs, nobody named
    assert page.get_by_test_id("stSidebarNav").count() == 0
    assert page.get_by_text("ACTIVE RUNS").count() == 0
    assert sidebar_identity(page) == ""
    assert not blocking_violations(page), blocking_violations(page)  # the sign-in screen: WCAG 2.1 AA
    page.context.close()

    a = signed_in_page(browser, signin_server, "a@school.example", "A")
    b = signed_in_page(browser, signin_server, "b@school.example", "B")
    teacher = signed_in_page(browser, signin_server, TEACHER, TEACHER_NAME)
    try:
        assert "A · learner" in sidebar_identity(a)
        assert "B · learner" in sidebar_identity(b)
        assert f"{TEACHER_NAME} · teacher" in sidebar_identity(teacher)
        for pg in (a, b, teacher):
            pg.get_by_text("ACTIVE RUNS").wait_for()  # the app itself, with its navigation
            assert pg.get_by_test_id("stSidebarNav").count() == 1
            assert_no_traceback(pg)
        a.wait_for_timeout(1500)
        assert not blocking_violations(a), blocking_violations(a)  # a signed-in learner's Home
        # each browser keeps its own person, across a reload and on another page
        a.reload()
        a.get_by_text("ACTIVE RUNS").wait_for()
        assert "A · learner" in sidebar_identity(a)
        b.get_by_test_id("stSidebarNav").get_by_role("link", name="Runs").click()
        b.wait_for_url("**/runs")
        b.get_by_text("ACTIVE RUNS").wait_for()
        assert "B · learner" in sidebar_identity(b)
    finally:
        for pg in (a, b, teacher):
            pg.context.close()


def test_sign_out_returns_to_the_sign_in_screen(browser, signin_server):  # noqa: F811
    page = signed_in_page(browser, signin_server, "c@school.example", "C")
    try:
        page.locator(".st-key-signed_in").get_by_role("button", name="Sign out").click()
        # Streamlit ends the provider's session too (its end_session_endpoint); the mock asks to confirm
        page.wait_for_url(signin_server.provider.url + "/oauth2/end_session*")
        page.get_by_role("button", name="End session").click()
        page.wait_for_url(signin_server.url + "/*")
        page.get_by_role("button", name="Sign in").wait_for()
        assert sidebar_identity(page) == ""
        page.goto(signin_server.url)  # the identity cookie is gone: still signed out
        page.get_by_role("button", name="Sign in").wait_for()
        assert sidebar_identity(page) == ""
    finally:
        page.context.close()


def test_without_auth_there_is_no_sign_in(browser, server):
    """No secrets file at all (the shared server): the one local user, no sign-in."""
    page = new_page(browser)
    page.goto(server.url)
    page.get_by_text("ACTIVE RUNS").wait_for()
    page.get_by_text("The quick path").wait_for()
    assert page.get_by_role("button", name="Sign in").count() == 0
    assert sidebar_identity(page) == ""
    page.context.close()


def test_a_class_without_sign_in_is_one_configuration_error(browser, tmp_path):
    """A secrets file with [classroom] and no [auth] would make every visitor the administrator:
    the home page and a deep link as a fresh server's first request get one message, no app."""
    classroom_only = write_secrets(tmp_path / "secrets.toml", {"classroom": {"teachers": [TEACHER]}})
    srv = Server(tmp_path / "store", args=["--secrets.files", str(classroom_only)])
    try:
        for path in ("/runs", "/"):  # the deep link first: legacy page mode on a fresh server
            page = new_page(browser)
            page.goto(srv.url + path)
            error = page.get_by_test_id("stAlertContentError")
            error.wait_for()
            assert error.count() == 1
            assert "set up for a class but has no sign-in" in error.inner_text()
            assert page.get_by_text("ACTIVE RUNS").count() == 0
            assert page.get_by_test_id("stSidebarNav").count() == 0
            assert page.get_by_test_id("stButton").count() == 0
            assert_no_traceback(page)
            page.context.close()
    finally:
        srv.stop()


def test_a_role_needs_an_email_the_provider_verified(browser, signin_server):  # noqa: F811
    """The teacher's address sent without email_verified earns no role (and no id of theirs)."""
    page = signed_in_page(browser, signin_server, TEACHER, TEACHER_NAME, verified=None)
    try:
        assert f"{TEACHER_NAME} · learner" in sidebar_identity(page)
    finally:
        page.context.close()


@pytest.mark.parametrize(
    "broken, says",
    [
        ("closed port", "The identity provider cannot be reached at [auth] server_metadata_url"),
        ("no client_id", "[auth] is missing client_id: set client_id in [auth]"),
    ],
)
def test_broken_auth_is_one_clear_message(browser, provider, tmp_path, broken, says):  # noqa: F811
    if broken == "closed port":
        srv = SignInServer(tmp_path / "store", None)
    else:
        srv = SignInServer(tmp_path / "store", provider, auth={"client_id": None})
    try:
        page = new_page(browser)
        page.goto(srv.url)
        error = page.get_by_test_id("stAlertContentError")
        error.wait_for()
        assert error.count() == 1
        text = error.inner_text()
        assert says in text and "Sign-in is configured but cannot work" in text
        assert "secrets.toml" in text
        if broken == "closed port":
            assert tomllib.loads(srv.secrets.read_text())["auth"]["server_metadata_url"] in text
        assert page.get_by_role("button", name="Sign in").count() == 0
        assert page.get_by_text("ACTIVE RUNS").count() == 0
        assert_no_traceback(page)
        page.context.close()
    finally:
        srv.stop()


class Tracker:
    """A web server on 127.0.0.1 that records every request: an image of it in a name would call it."""

    def __init__(self):
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def assert_no_markup_from(page, tracker: Tracker, name: str, where: str = "body") -> None:
    """No image or link of the crafted name anywhere on the page, the tracker never called, and
    the name in `where`'s text as typed (plain_markdown's invisible word joiners aside)."""
    assert page.locator(f"img[src^='{tracker.url}']").count() == 0
    links = page.locator(f"a[href^='{tracker.url}'], a[href*='evil'], a[href^='mailto:']")
    assert links.count() == 0, [
        links.nth(i).evaluate("e => e.parentElement.outerHTML") for i in range(links.count())
    ]
    assert name in page.locator(where).first.inner_text().replace("\u2060", "")
    assert tracker.requests == [], tracker.requests
    assert_no_traceback(page)


def test_the_allow_list_and_a_crafted_display_name(browser, provider, tmp_path):  # noqa: F811
    """A class for school.example only, on a cluster that does not answer (nothing starts, so a
    queued run stays in every sidebar). An outsider gets "not in this class" and no app. Mallory's
    provider name is an image pointing at a tracker, a link and a bare address: her runs show it
    as typed in Ben's sidebar, on the Class wall and in the Runs picker; the tracker is never asked."""
    tracker = Tracker()
    name = f"![]({tracker.url}/x.png) [click]({tracker.url}/click) www.evil.example"
    srv = SignInServer(
        tmp_path / "store",
        provider,
        classroom={"allowed_domains": ["school.example"]},
        env={ADDRESS_ENV: f"127.0.0.1:{free_port()}"},
    )
    pages = []
    try:
        outsider = signed_in_page(browser, srv, "mallory@gmail.example", "M", admitted=False)
        pages.append(outsider)
        assert outsider.get_by_role("button", name="Sign out").count() == 1
        assert outsider.get_by_text("ACTIVE RUNS").count() == 0
        assert outsider.get_by_test_id("stSidebarNav").count() == 0

        mallory = signed_in_page(browser, srv, "mallory@school.example", name)
        pages.append(mallory)
        assert_no_markup_from(mallory, tracker, name, ".st-key-signed_in")  # her own signed-in box
        # her runs, as the job API records them (owner_name is the signed-in name)
        store = RunStore(srv.store)
        cfg = TrainConfig.from_dict(dict(model="mlp_128_64", epochs=1, limit=300, batch_size=50)).to_dict()
        store.create(cfg, owner="mallory@school.example", owner_name=name)
        done = store.create(cfg, owner="mallory@school.example", owner_name=name)
        store.update(done.id, status="completed", best_val_acc=0.9)

        ben = signed_in_page(browser, srv, "ben@school.example", "Ben")
        pages.append(ben)
        ben.reload()
        ben.locator("[data-testid=stSidebar] [data-testid=stProgress]").first.wait_for()
        assert_no_markup_from(ben, tracker, name, "[data-testid=stSidebar]")
        ben.goto(srv.url + "/wall")
        ben.get_by_text("Best so far").wait_for()
        assert_no_markup_from(ben, tracker, name, "[data-testid=stAlertContentSuccess]")
        ben.goto(srv.url + "/runs")
        picker = ben.get_by_test_id("stMultiSelect").filter(has_text="Select runs to compare")
        picker.wait_for()
        picker.click()
        ben.get_by_role("option").first.wait_for()  # the options, open: each names its owner
        assert_no_markup_from(ben, tracker, name, "[role=listbox]")
    finally:
        for pg in pages:
            pg.context.close()
        srv.stop()
        tracker.stop()
