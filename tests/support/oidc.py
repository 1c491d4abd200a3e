"""A real OpenID Connect provider for the sign-in tests, and the app served with sign-in on.

`Provider` runs oidc-provider-mock (`python -m oidc_provider_mock`) as its own process on
127.0.0.1:PORT, requiring client registration like a real provider: `register` asks its registration
endpoint for a client id and secret bound to one redirect URI. Its authorization page is a form: the
browser types a subject (we use the e-mail) into the `sub` field and presses Authorize; the claims the
ID token carries for that subject (email, email_verified, name) are set beforehand with `set_user`
(PUT /users/SUB): a verified address unless a test says otherwise, as a school's provider sends.

`SignInServer` writes a temporary secrets.toml ([auth] with a random cookie_secret per run, never in
the repository, and [classroom] with one teacher) and serves the app with `--secrets.files PATH`.

`signed_in_page(browser, server, email, name)` is a fresh browser context signed in through the real
flow: app -> Sign in -> provider form -> back to the app, signed in. Close it with page.context.close().
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from support.browser import Server, free_port, require_browser

TEACHER = "teacher@school.example"
TEACHER_NAME = "Ms Turing"
METADATA_PATH = "/.well-known/openid-configuration"
_NOT_LOCAL = re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])")  # no internet here: fail fast


class Provider:
    """oidc-provider-mock on 127.0.0.1, a process of its own; `log` collects its output."""

    def __init__(self, log: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metadata_url = self.url + METADATA_PATH
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oidc_provider_mock",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--require-registration",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.metadata_url, timeout=2) as response:
                    if json.load(response).get("authorization_endpoint"):
                        return
            except (OSError, ValueError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"oidc-provider-mock did not answer {self.metadata_url} within 30 s (see {log})")

    def _request(self, method: str, path: str, body: object) -> bytes:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def register(self, redirect_uri: str) -> tuple[str, str]:
        """A new client (RFC 7591 dynamic registration) allowed to return to redirect_uri only:
        (client_id, client_secret)."""
        answer = json.loads(self._request("POST", "/oauth2/clients", {"redirect_uris": [redirect_uri]}))
        return answer["client_id"], answer["client_secret"]

    def set_user(
        self, email: str, name: str | None = None, verified: bool | None = True, **claims: object
    ) -> None:
        """The claims the provider puts in the ID token of subject `email` (signing in as it);
        `verified`: its email_verified claim (None: none sent)."""
        body = {
            "email": email,
            **({"name": name} if name else {}),
            **({} if verified is None else {"email_verified": verified}),
            **claims,
        }
        self._request("PUT", f"/users/{email}", body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes as JSON for what we write
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_secrets(path: Path, sections: Mapping[str, Mapping[str, object]]) -> Path:
    """A secrets.toml: {"auth": {...}, "classroom": {...}, "classroom.names": {...}}."""
    lines = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{json.dumps(key)} = {_toml(value)}" for key, value in keys.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


class SignInServer(Server):
    """The app with sign-in on: a temporary secrets.toml with [auth] for `provider` (a client
    registered for this server's callback, a fresh random cookie_secret) and [classroom] with TEACHER
    and the keys of `classroom`. `auth` replaces or, with None values, removes [auth] keys (a broken
    configuration); with provider=None the provider keys are placeholders pointing at a closed port.
    `env`: more environment variables for the server."""

    def __init__(
        self,
        store: Path,
        provider: Provider | None,
        auth: Mapping[str, object | None] | None = None,
        names: Mapping[str, str] | None = None,
        classroom: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
    ):
        port = free_port()
        redirect_uri = f"http://127.0.0.1:{port}/oauth2callback"
        if provider is not None:
            client_id, client_secret = provider.register(redirect_uri)
            metadata_url = provider.metadata_url
        else:
            client_id, client_secret = "mnist-lab", secrets.token_hex(16)
            metadata_url = f"http://127.0.0.1:{free_port()}{METADATA_PATH}"  # nothing listens there
        section: dict[str, object | None] = {
            "redirect_uri": redirect_uri,
            "cookie_secret": secrets.token_hex(32),
            "client_id": client_id,
            "client_secret": client_secret,
            "server_metadata_url": metadata_url,
            **(auth or {}),
        }
        sections: dict[str, Mapping[str, object]] = {
            "auth": {k: v for k, v in section.items() if v is not None},
            "classroom": {"teachers": [TEACHER], **(classroom or {})},
        }
        if names:
            sections["classroom.names"] = dict(names)
        store.mkdir(parents=True, exist_ok=True)
        self.provider = provider
        self.secrets = write_secrets(store.parent / f"secrets-{port}.toml", sections)  # one per server
        # warm workers as the test's environment says (off, unless a test turns them on); a
        # module-scoped server starts before conftest's per-test environment is set
        warm = {"MNIST_LAB_WARM_WORKERS": os.environ.get("MNIST_LAB_WARM_WORKERS", "0")}
        super().__init__(
            store, port=port, args=["--secrets.files", str(self.secrets)], env={**warm, **(env or {})}
        )


def new_page(browser):
    """A fresh browser context (its own cookies: a different person) and its page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route(_NOT_LOCAL, lambda route: route.abort())  # the provider's page links a CDN stylesheet
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def signed_in_page(
    browser,
    server: SignInServer,
    email: str,
    name: str | None = None,
    verified: bool | None = True,
    admitted: bool = True,
):
    """A new browser context signed in to `server` as `email` (display name `name`, if given, as the
    provider's `name` claim; `verified`: its email_verified claim), through the real flow. Returns
    the page, on the app, signed in; `admitted=False`: on the app's "not in this class" screen."""
    assert server.provider is not None, "signed_in_page needs a SignInServer with a provider"
    server.provider.set_user(email, name, verified)
    page = new_page(browser)
    page.goto(server.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.provider.url + "/oauth2/authorize*")
    page.locator("input[name=sub]").fill(email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(server.url + "/*")
    if admitted:
        page.locator(".st-key-signed_in").get_by_role("button", name="Sign out").wait_for()
    else:
        page.get_by_text("not in this class").wait_for()
        page.get_by_role("button", name="Sign out").wait_for()
    return page


def sidebar_identity(page) -> str:
    """The sidebar's 'SIGNED IN' block as text (name and role), '' while there is none."""
    block = page.locator(".st-key-signed_in")
    return block.inner_text() if block.count() else ""


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    require_browser()
    prov = Provider(tmp_path_factory.mktemp("oidc") / "provider.log")
    yield prov
    prov.stop()


@pytest.fixture(scope="module")
def signin_server(provider, tmp_path_factory):
    """The app with sign-in through `provider`, one per test module."""
    srv = SignInServer(tmp_path_factory.mktemp("signin") / "store", provider)
    yield srv
    srv.stop()
