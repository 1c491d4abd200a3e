"""Sign-in through Streamlit's OpenID Connect (st.login, st.user, st.logout): who the user is."""

from __future__ import annotations

import functools
import importlib.util
from typing import NoReturn

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from mnist_core.jobs.identity import (
    LOCAL,
    IdentityError,
    NotInClass,
    User,
    auth_problem,
    classroom_from_secrets,
    provider_problem,
    require_verified,
    user_from_claims,
)
from mnist_core.words import plain_markdown

from .faults import show_fault_details
from .shell import app_pages

SIGN_IN_BUTTON = "Sign in"


SIGN_OUT_BUTTON = "Sign out"


_SECRETS_HINT = "the secrets file (`.streamlit/secrets.toml`, or the file given with `--secrets.files`)"


def current_user() -> User:
    """Who acts in this session; app.py calls it before the page runs, pages and fragments may call
    it again (nothing is cached across sessions, and no network is used once signed in).

    Without an [auth] section in the secrets file: LOCAL, the one local user who owns everything,
    unless there is a [classroom] section (a class without sign-in would make every visitor its
    administrator): then one message saying what to set, and the end of the run. With a valid [auth]:
    the signed-in user (role from [classroom]), a "not in this class" screen for an account the
    allow-list does not admit, or else a sign-in screen and the end of the run. With a broken one (a
    missing key, a bad address, an unreachable provider, a bad [classroom]): one message saying
    what to set, and the end of the run. The fault guard shows error details to teachers only."""
    user = _current_user()
    show_fault_details(user.is_teacher)
    return user


def _current_user() -> User:
    try:
        auth = st.secrets.get("auth")
        classroom_section = st.secrets.get("classroom")
    except StreamlitSecretNotFoundError as exc:
        if getattr(exc, "error_id", None) == "no-secrets-found":
            return LOCAL
        _sign_in_broken(f"The secrets file cannot be read: {exc}")  # fail closed: it may hold [auth]
    if auth is None:
        if classroom_section is not None:
            _class_without_sign_in()
        return LOCAL
    problem = auth_problem(auth) or _auth_packages_problem()
    if problem:
        _sign_in_broken(problem)
    try:
        classroom = classroom_from_secrets(classroom_section)
    except IdentityError as exc:
        _sign_in_broken(str(exc))
    claims = st.user.to_dict()
    if claims.get("is_logged_in") is not True:
        try:
            _provider_answers(auth["server_metadata_url"])
        except IdentityError as exc:
            _sign_in_broken(str(exc))
        _sign_in_screen()
    try:
        return user_from_claims(claims, classroom, require_verified(auth))
    except NotInClass as exc:
        _not_in_class(str(exc))
    except IdentityError as exc:
        _sign_in_broken(str(exc), signed_in=True)


@functools.cache
def _auth_packages_problem() -> str | None:
    missing = [name for name in ("authlib", "httpx") if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"Sign-in needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}, which "
            "this server lacks: install them with `pip install -r requirements.txt`."
        )
    return None


@st.cache_data(ttl=60, show_spinner=False)
def _provider_answers(url: str) -> bool:
    """The provider's discovery document is usable (kept a minute); raises IdentityError otherwise,
    and a failure is not cached, so a fixed provider is seen on the next run."""
    problem = provider_problem(url)
    if problem:
        raise IdentityError(problem)
    return True


def _hide_navigation() -> None:
    """A screen that stops before app.py's st.navigation still ends Streamlit's legacy pages/ mode
    (see ensure_app_shell), so the sidebar never lists the bare page files."""
    st.navigation(app_pages(), position="hidden")


def _sign_in_screen() -> NoReturn:
    _hide_navigation()
    st.title("MNIST Lab")
    st.write("Sign in with your school account to train, compare and share your models.")
    if st.button(SIGN_IN_BUTTON, type="primary", key="sign_in", icon=":material/login:"):
        st.login()
    st.stop()


def _sign_in_broken(problem: str, signed_in: bool = False) -> NoReturn:
    _hide_navigation()
    st.title("MNIST Lab")
    st.error(
        f"**Sign-in is configured but cannot work.** {problem}  \nThe settings are the [auth] and "
        f"[classroom] sections of {_SECRETS_HINT}; restart the app after changing them.",
        icon=":material/key_off:",
    )
    if signed_in and st.button(SIGN_OUT_BUTTON, key="sign_out"):
        st.logout()
    st.stop()


def _class_without_sign_in() -> NoReturn:
    _hide_navigation()
    st.title("MNIST Lab")
    st.error(
        "**This server is set up for a class but has no sign-in.** The secrets file has a [classroom] "
        "section and no [auth] section: without sign-in every visitor would be the administrator, "
        "who may stop and delete every run. Add an [auth] section for your identity provider (see "
        "docs/classroom.md), or remove [classroom] to use MNIST Lab alone on this machine. The "
        f"settings are in {_SECRETS_HINT}; restart the app after changing them.",
        icon=":material/key_off:",
    )
    st.stop()


def _not_in_class(problem: str) -> NoReturn:
    """A signed-in account the class's allow-list does not admit: why, and Sign out; no app."""
    _hide_navigation()
    st.title("MNIST Lab")
    st.warning(plain_markdown(problem), icon=":material/block:")
    if st.button(SIGN_OUT_BUTTON, key="sign_out", icon=":material/logout:"):
        st.logout()
    st.stop()


def signed_in_sidebar(user: User) -> None:
    """Who is signed in (name, role) and a Sign out button; nothing without sign-in (LOCAL)."""
    if user == LOCAL:
        return
    with st.container(key="signed_in"):
        st.caption("SIGNED IN")
        st.markdown(f"**{plain_markdown(user.name)}** · {user.role}")
        if st.button(SIGN_OUT_BUTTON, key="sign_out", icon=":material/logout:"):
            st.logout()
