"""Identity: users from OpenID Connect claims, classroom roles, checks of the [auth] section and of the
provider's discovery document; and app.py's current_user() on each branch (AppTest, no browser)."""

import http.server
import json
import threading
from contextlib import contextmanager

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.jobs.identity import (
    ADMIN,
    LOCAL,
    IdentityError,
    User,
    auth_problem,
    classroom_from_secrets,
    provider_problem,
    user_from_claims,
)
from support import ROOT
from support.browser import free_port

ROOM = {"teachers": ["T@School.example"], "admins": ["head@school.example"]}
DISCOVERY = {
    "issuer": "http://127.0.0.1",
    "authorization_endpoint": "http://127.0.0.1/authorize",
    "token_endpoint": "http://127.0.0.1/token",
    "jwks_uri": "http://127.0.0.1/jwks",
}


def auth_section(**changes):
    section = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "c" * 64,
        "client_id": "mnist-lab",
        "client_secret": "s3cret",
        "server_metadata_url": "https://accounts.example/.well-known/openid-configuration",
    }
    section.update(changes)
    return {k: v for k, v in section.items() if v is not None}


# --- users and roles ---------------------------------------------------------------------------


def test_local_and_admin_users():
    assert LOCAL == User("local", "You", "admin") and LOCAL.is_teacher
    assert ADMIN == User("admin", "Administrator", "admin") and ADMIN.is_teacher
    assert not User("a@x.org", "A", "learner").is_teacher
    assert User("t@x.org", "T", "teacher").is_teacher
    with pytest.raises(ValueError, match="role"):
        User("a@x.org", "A", "student")


def test_id_is_the_lower_cased_email_and_roles_come_from_configuration():
    assert user_from_claims({"sub": "1", "email": "Ada@School.example", "name": "Ada L"}, ROOM) == User(
        "ada@school.example", "Ada L", "learner"
    )
    assert user_from_claims({"sub": "2", "email": "t@school.EXAMPLE"}, ROOM).role == "teacher"
    assert user_from_claims({"sub": "3", "email": "head@school.example"}, ROOM).role == "admin"
    assert user_from_claims({"sub": "2", "email": "t@school.example"}, None).role == "learner"


def test_display_name_configuration_then_claim_then_local_part():
    room = {**ROOM, "names": {"Ada@school.example": "Ada (class 3b)"}}
    claims = {"sub": "1", "email": "ada@school.example", "name": "Ada Lovelace"}
    assert user_from_claims(claims, room).name == "Ada (class 3b)"
    assert user_from_claims(claims, ROOM).name == "Ada Lovelace"
    assert user_from_claims({"sub": "1", "email": "ada@school.example", "name": " "}, ROOM).name == "ada"


def test_without_a_trusted_email_the_subject_identifies():
    assert user_from_claims({"sub": "abc-123", "name": "N"}, ROOM) == User("abc-123", "N", "learner")
    # an e-mail the provider marks unverified neither identifies nor earns a role
    unverified = {"sub": "abc-123", "email": "t@school.example", "email_verified": False}
    assert user_from_claims(unverified, ROOM) == User("abc-123", "abc-123", "learner")
    assert user_from_claims({**unverified, "email_verified": True}, ROOM).role == "teacher"


def test_claims_that_name_nobody_or_a_reserved_id_are_refused():
    with pytest.raises(IdentityError, match="neither an e-mail nor a subject"):
        user_from_claims({"name": "x"}, ROOM)
    for reserved in ("local", "admin"):
        with pytest.raises(IdentityError, match="reserved"):
            user_from_claims({"sub": reserved}, ROOM)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"teachers": "t@school.example"}, "teachers must be a list of e-mail addresses"),
        ({"teachers": ["teacher"]}, "'teacher' is not one"),
        ({"admins": [3]}, "admins must hold e-mail addresses"),
        ({"teacher": ["t@school.example"]}, "'teacher': did you mean teachers?"),
        ({"admin": ["t@school.example"]}, "did you mean admins?"),
        ({"names": ["Ada"]}, "must map e-mail addresses to display names"),
        ({"names": {"a@school.example": ""}}, "must be a display name"),
        ("teachers", "must be a table"),
    ],
)
def test_bad_classroom_values_say_what_to_set(section, message):
    with pytest.raises(IdentityError, match=message):
        classroom_from_secrets(section)


def test_classroom_defaults():
    room = classroom_from_secrets(None)
    assert room.role_of("t@school.example") == "learner" and not room.teachers
    assert classroom_from_secrets(ROOM).teachers == {"t@school.example"}
    # keys for other parts of the app (the class's rules) are not the roles' business
    assert classroom_from_secrets({**ROOM, "max_queued": 2, "exercise": "mlp"}).admins == {
        "head@school.example"
    }


# --- the [auth] section ------------------------------------------------------------------------


def test_a_complete_auth_section_passes():
    assert auth_problem(auth_section()) is None
    assert auth_problem(auth_section(redirect_uri="http://localhost:{port}/oauth2callback")) is None
    assert auth_problem(auth_section(server_metadata_url="http://localhost:9400/x")) is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"client_id": None}, "missing client_id: set client_id in"),
        ({"client_id": None, "client_secret": ""}, "missing client_id, client_secret"),
        ({"redirect_uri": "/oauth2callback"}, "redirect_uri must be the app's absolute address"),
        ({"redirect_uri": "http://127.0.0.1:8501/"}, "must end in /oauth2callback"),
        ({"cookie_secret": "xxx"}, "cookie_secret is shorter than 32"),
        ({"server_metadata_url": "accounts.google.com"}, "absolute discovery address"),
        ({"server_metadata_url": "http://idp.example/x"}, "must use https"),
    ],
)
def test_a_broken_auth_section_says_what_to_set(changes, message):
    problem = auth_problem(auth_section(**changes))
    assert problem and message in problem
    assert "s3cret" not in problem  # never echoes the client secret


def test_a_named_provider_is_pointed_at_the_flat_layout():
    section = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "c" * 64,
        "google": {"client_id": "x", "client_secret": "y", "server_metadata_url": "https://a/b"},
    }
    assert "[auth.google]" in auth_problem(section)
    assert "must be a table" in auth_problem("nope")


# --- the provider's discovery document ---------------------------------------------------------


@contextmanager
def http_answering(status: int, body: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/openid-configuration"
    finally:
        server.shutdown()
        server.server_close()


def test_a_provider_with_a_discovery_document_passes():
    with http_answering(200, json.dumps(DISCOVERY).encode()) as url:
        assert provider_problem(url) is None


@pytest.mark.parametrize(
    "status, body, message",
    [
        (404, b"no", "answered 404"),
        (200, b"<html>login</html>", "did not answer with an OpenID Connect discovery document"),
        (200, json.dumps({"issuer": "x"}).encode(), "without authorization_endpoint, token_endpoint"),
    ],
)
def test_a_wrong_discovery_address_says_so(status, body, message):
    with http_answering(status, body) as url:
        problem = provider_problem(url)
    assert problem and message in problem and url in problem


def test_an_unreachable_provider_says_so():
    url = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
    problem = provider_problem(url, timeout_s=2)
    assert problem and "cannot be reached" in problem and url in problem


# --- current_user() in app.py (AppTest) --------------------------------------------------------


def app(secrets=None, user=None) -> AppTest:
    st.cache_resource.clear()  # a job manager cached by an earlier test points at its deleted store
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if secrets:
        at.secrets = secrets
    if user is not None:
        at.user = user
    return at.run()


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_without_auth_there_is_no_sign_in():
    at = app()
    assert not at.exception
    assert at.title[0].value == "MNIST Lab"
    assert not [b for b in at.button if b.label in ("Sign in", "Sign out")]
    assert "SIGNED IN" not in texts(at.sidebar.caption)


def test_signed_out_sees_the_sign_in_screen_only():
    with http_answering(200, json.dumps(DISCOVERY).encode()) as url:
        at = app({"auth": auth_section(server_metadata_url=url), "classroom": ROOM})
    assert not at.exception and not at.error
    assert [b.label for b in at.button] == ["Sign in"]
    assert "ACTIVE RUNS" not in texts(at.sidebar.caption)  # the app itself does not run


def test_signed_in_user_is_named_with_their_role_in_the_sidebar():
    user = {"is_logged_in": True, "sub": "9", "email": "T@school.example", "name": "Ms Turing"}
    at = app({"auth": auth_section(), "classroom": ROOM}, user)
    assert not at.exception and not at.error
    assert "**Ms Turing** · teacher" in texts(at.sidebar.markdown)
    assert "Sign out" in [b.label for b in at.sidebar.button]
    assert "ACTIVE RUNS" in texts(at.sidebar.caption)


@pytest.mark.parametrize(
    "secrets, message",
    [
        ({"auth": auth_section(client_id=None)}, "missing client_id"),
        (
            {"auth": auth_section(server_metadata_url=f"http://127.0.0.1:{free_port()}/.well-known/x")},
            "cannot be reached",
        ),
        ({"auth": auth_section(), "classroom": {"teacher": ["t@school.example"]}}, "did you mean teachers"),
    ],
)
def test_broken_sign_in_is_one_message_without_a_traceback(secrets, message):
    at = app(secrets, {"email": "test@example.com"})
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value
    assert "Sign-in is configured but cannot work" in at.error[0].value
    assert not [b for b in at.button if b.label == "Sign in"]
