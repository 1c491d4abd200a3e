"""Identity: users from OpenID Connect claims (a verified e-mail only), classroom roles, the class's
allow-list, checks of the [auth] section (https off this machine) and of the provider's discovery
document; and app.py's current_user() on each branch (AppTest, no browser): a [classroom] without
[auth] is one configuration error on every page, an account off the allow-list gets no app."""

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
    NotInClass,
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


def verified(email: str, sub: str = "1", **claims) -> dict:
    return {"sub": sub, "email": email, "email_verified": True, **claims}


def test_id_is_the_lower_cased_email_and_roles_come_from_configuration():
    assert user_from_claims(verified("Ada@School.example", name="Ada L"), ROOM) == User(
        "ada@school.example", "Ada L", "learner"
    )
    assert user_from_claims(verified("t@school.EXAMPLE", "2"), ROOM).role == "teacher"
    assert user_from_claims(verified("head@school.example", "3"), ROOM).role == "admin"
    assert user_from_claims(verified("t@school.example", "2"), None).role == "learner"


def test_display_name_configuration_then_claim_then_local_part():
    room = {**ROOM, "names": {"Ada@school.example": "Ada (class 3b)"}}
    claims = verified("ada@school.example", name="Ada Lovelace")
    assert user_from_claims(claims, room).name == "Ada (class 3b)"
    assert user_from_claims(claims, ROOM).name == "Ada Lovelace"
    assert user_from_claims(verified("ada@school.example", name=" "), ROOM).name == "ada"


def test_without_a_verified_email_the_subject_identifies():
    assert user_from_claims({"sub": "abc-123", "name": "N"}, ROOM) == User("abc-123", "N", "learner")
    # an e-mail the provider does not vouch for neither identifies nor earns a role: marked false,
    # or sent without email_verified at all (a provider that never checked the address)
    for claim in ({"email_verified": False}, {}, {"email_verified": "false"}, {"email_verified": 1}):
        claims = {"sub": "abc-123", "email": "t@school.example", **claim}
        assert user_from_claims(claims, ROOM) == User("abc-123", "abc-123", "learner"), claim
    teacher = {"sub": "abc-123", "email": "t@school.example"}
    assert user_from_claims({**teacher, "email_verified": True}, ROOM).role == "teacher"
    assert user_from_claims({**teacher, "email_verified": "true"}, ROOM).role == "teacher"  # Cognito


def test_the_teacher_may_trust_a_provider_that_sends_no_email_verified():
    teacher = {"sub": "abc-123", "email": "t@school.example"}
    assert user_from_claims(teacher, ROOM, require_verified=False).role == "teacher"
    # the opt-out covers a missing claim only: an address marked unverified still counts for nothing
    unverified = {**teacher, "email_verified": False}
    assert user_from_claims(unverified, ROOM, require_verified=False).role == "learner"


def test_a_subject_never_takes_over_someones_email():
    """A provider that lets a user choose the subject: sub "t@school.example" with an unverified
    e-mail must not become the teacher's id (which owns the teacher's runs)."""
    user = user_from_claims({"sub": "t@school.example", "email": "t@school.example"}, ROOM)
    assert user.id == "sub:t@school.example" and user.role == "learner"
    assert user.id != user_from_claims(verified("t@school.example"), ROOM).id


def test_the_allow_list_admits_listed_domains_emails_and_teachers_only():
    room = {
        **ROOM,
        "allowed_domains": ["School.example", "@pupils.example"],
        "allowed_emails": ["Guest@Other.example"],
    }
    assert user_from_claims(verified("ada@school.example"), room).role == "learner"
    assert user_from_claims(verified("bo@pupils.example"), room).id == "bo@pupils.example"
    assert user_from_claims(verified("guest@other.example"), room).id == "guest@other.example"
    extra = {**room, "teachers": ["t@elsewhere.example"]}
    assert user_from_claims(verified("t@elsewhere.example"), extra).role == "teacher"  # listed
    for outsider in ("mallory@gmail.example", "a@evil.school.example", "a@school.example.evil"):
        with pytest.raises(NotInClass, match="not in this class.*not on the class list"):
            user_from_claims(verified(outsider), room)
    # an address the provider does not vouch for is no way in, and neither is the subject alone
    with pytest.raises(NotInClass, match="did not confirm the address ada@school.example"):
        user_from_claims({"sub": "9", "email": "ada@school.example"}, room)
    with pytest.raises(NotInClass, match="did not confirm an e-mail address"):
        user_from_claims({"sub": "ada@school.example"}, room)
    assert issubclass(NotInClass, IdentityError)


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
        ({"allowed_domains": "school.example"}, "allowed_domains must be a list of e-mail domains"),
        ({"allowed_domains": ["a@school.example"]}, "'a@school.example' is not one"),
        ({"allowed_domains": ["school"]}, "'school' is not one"),
        ({"allowed_emails": ["school.example"]}, "allowed_emails must hold e-mail addresses"),
        ({"allowed_domain": ["school.example"]}, "did you mean allowed_domains?"),
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
    assert auth_problem(auth_section(redirect_uri="https://lab.school.example/oauth2callback")) is None
    assert auth_problem(auth_section(server_metadata_url="http://localhost:9400/x")) is None
    assert auth_problem(auth_section(server_metadata_url="http://[::1]:9400/x")) is None
    assert auth_problem(auth_section(require_email_verified=False)) is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"client_id": None}, "missing client_id: set client_id in"),
        ({"client_id": None, "client_secret": ""}, "missing client_id, client_secret"),
        ({"redirect_uri": "/oauth2callback"}, "redirect_uri must be the app's absolute address"),
        ({"redirect_uri": "http://127.0.0.1:8501/"}, "must end in /oauth2callback"),
        ({"cookie_secret": "xxx"}, "cookie_secret is shorter than 32"),
        ({"server_metadata_url": "accounts.google.com"}, "absolute discovery address"),
        ({"server_metadata_url": "http://idp.example/x"}, "server_metadata_url must use https"),
        # the app's own address off this machine: the provider's code would cross the network readable
        ({"redirect_uri": "http://lab.school.example/oauth2callback"}, "redirect_uri must use https"),
        ({"redirect_uri": "http://10.0.0.5:{port}/oauth2callback"}, "redirect_uri must use https"),
        ({"client_kwargs": {"token_endpoint": "http://idp.example/t"}}, "client_kwargs.token_endpoint"),
        ({"require_email_verified": "no"}, "require_email_verified must be true or false"),
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


def test_a_provider_with_a_plain_http_endpoint_off_this_machine_is_refused():
    document = {**DISCOVERY, "token_endpoint": "http://idp.example/token"}
    with http_answering(200, json.dumps(document).encode()) as url:
        problem = provider_problem(url)
    assert problem and "plain-http token_endpoint (http://idp.example/token)" in problem


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
    user = {"is_logged_in": True, **verified("T@school.example", "9", name="Ms Turing")}
    at = app({"auth": auth_section(), "classroom": ROOM}, user)
    assert not at.exception and not at.error
    assert "**Ms Turing** · teacher" in texts(at.sidebar.markdown)
    assert "Sign out" in [b.label for b in at.sidebar.button]
    assert "ACTIVE RUNS" in texts(at.sidebar.caption)
    # the same claims without email_verified: a learner, unless [auth] trusts such a provider
    unverified = {k: v for k, v in user.items() if k != "email_verified"}
    assert "· learner" in texts(app({"auth": auth_section(), "classroom": ROOM}, unverified).sidebar.markdown)
    trusting = {"auth": auth_section(require_email_verified=False), "classroom": ROOM}
    assert "**Ms Turing** · teacher" in texts(app(trusting, unverified).sidebar.markdown)


PAGES = ("home", "train", "runs", "wall", "lessons", "draw")


@pytest.mark.parametrize("page", PAGES)
def test_a_class_without_sign_in_is_one_configuration_error_on_every_page(page):
    """[classroom] without [auth] would make every visitor the administrator of every run."""
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {"classroom": {"teachers": ["t@school.example"], "max_queued": 2}}
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    message = at.error[0].value
    assert "set up for a class but has no sign-in" in message and "[auth]" in message
    assert "secrets.toml" in message and "docs/classroom.md" in message
    assert "ACTIVE RUNS" not in texts(at.sidebar.caption) and not at.button  # no app, nothing to press
    assert len(at.title) == 1  # the message's page only: the chosen page did not run


def test_an_account_off_the_allow_list_gets_a_not_in_this_class_page_and_no_app():
    room = {**ROOM, "allowed_domains": ["school.example"]}
    outsider = {"is_logged_in": True, **verified("mallory@gmail.example", name="Mallory")}
    at = app({"auth": auth_section(), "classroom": room}, outsider)
    assert not at.exception and not at.error
    assert len(at.warning) == 1 and "not in this class" in at.warning[0].value
    assert [b.label for b in at.button] == ["Sign out"]
    assert "ACTIVE RUNS" not in texts(at.sidebar.caption)
    inside = {"is_logged_in": True, **verified("ada@school.example", name="Ada")}
    at = app({"auth": auth_section(), "classroom": room}, inside)
    assert not at.exception and not at.warning and "ACTIVE RUNS" in texts(at.sidebar.caption)


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
