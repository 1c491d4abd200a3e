"""Real Chromium against a real OpenID Connect provider (oidc-provider-mock, its own process):
sign-in through the provider's form, three people in three browser contexts with their roles,
sign-out; no sign-in without [auth]; a broken [auth] is one clear message, not a traceback."""

import tomllib

import pytest

from support.browser import Server
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


def test_without_auth_there_is_no_sign_in(browser, server, tmp_path):
    """No secrets file at all (the shared server), and a secrets file without [auth]."""
    classroom_only = write_secrets(tmp_path / "secrets.toml", {"classroom": {"teachers": [TEACHER]}})
    srv = Server(tmp_path / "store", args=["--secrets.files", str(classroom_only)])
    try:
        for url in (server.url, srv.url):
            page = new_page(browser)
            page.goto(url)
            page.get_by_text("ACTIVE RUNS").wait_for()
            page.get_by_text("The quick path").wait_for()
            assert page.get_by_role("button", name="Sign in").count() == 0
            assert sidebar_identity(page) == ""
            page.context.close()
    finally:
        srv.stop()


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
