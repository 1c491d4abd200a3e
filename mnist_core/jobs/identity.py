"""Who is acting: users, their classroom roles, and checks of the sign-in configuration.

No Streamlit here. pages/ui/signin.py reads the secrets file's `[auth]` and `[classroom]` sections and
the signed-in user's OpenID Connect claims (st.user), and hands them to these functions as plain
mappings; the resulting `User` is what the job API receives as the acting user. Without sign-in the
app acts as `LOCAL` (one local user who owns and controls everything), the command line as `ADMIN`.

A user's `id` is the provider's e-mail claim, lower-cased (an e-mail the provider marks unverified is
not trusted), else its `sub`. Roles come only from configuration:

    [classroom]
    teachers = ["t@school.example"]          # may see and control every learner's runs
    admins = ["head@school.example"]         # optional; everything teachers may, and more
    [classroom.names]                        # optional display names
    "a@school.example" = "Ada"
"""

from __future__ import annotations

import difflib
import http.client
import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

ROLES = ("learner", "teacher", "admin")


@dataclass(frozen=True)
class User:
    id: str  # stable identity: the e-mail claim (lower-cased), else `sub`; "local" without sign-in
    name: str  # display name
    role: str  # "learner", "teacher" or "admin"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}")
        if not self.id:
            raise ValueError("a user needs a non-empty id")

    @property
    def is_teacher(self) -> bool:
        """Teachers and admins: they may see and control every learner's runs."""
        return self.role in ("teacher", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


LOCAL = User("local", "You", "admin")  # no sign-in configured: owns and controls everything
ADMIN = User("admin", "Administrator", "admin")  # the command line
RESERVED_IDS = frozenset({LOCAL.id, ADMIN.id})  # no signed-in user may take these over


class IdentityError(ValueError):
    """The sign-in or classroom configuration, or a provider's answer, cannot be used. The message
    says what is wrong and what to set; it holds no secret values."""


# --- the classroom: roles and display names ---------------------------------------------------------

CLASSROOM_KEYS = ("teachers", "admins", "names")
_EXAMPLE = 'teachers = ["t@school.example"]'


@dataclass(frozen=True)
class Classroom:
    teachers: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def role_of(self, email: str | None) -> str:
        email = (email or "").lower()
        if email in self.admins:
            return "admin"
        if email in self.teachers:
            return "teacher"
        return "learner"


def _emails(section: Mapping, key: str) -> frozenset[str]:
    value = section.get(key, [])
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise IdentityError(
            f'[classroom] {key} must be a list of e-mail addresses, e.g. {key} = ["t@school.example"]; '
            f"it is {type(value).__name__} {value!r}."
        )
    out = set()
    for item in value:
        if not isinstance(item, str) or "@" not in item.strip():
            raise IdentityError(
                f"[classroom] {key} must hold e-mail addresses (the provider's e-mail claim); "
                f"{item!r} is not one."
            )
        out.add(item.strip().lower())
    return frozenset(out)


def classroom_from_secrets(section: object) -> Classroom:
    """The roles and names in the `[classroom]` section of the secrets file (None: nobody is a
    teacher), checked: a near miss of a key (a typo such as `teacher =`) and values of the wrong kind
    raise IdentityError. Keys unlike these are left for other parts of the app."""
    if section is None:
        return Classroom()
    if isinstance(section, Classroom):
        return section
    if not isinstance(section, Mapping):
        raise IdentityError(f"[classroom] must be a table (a [classroom] section), e.g. {_EXAMPLE}.")
    for key in section:  # other keys belong to other parts of the app (the class's rules)
        close = difflib.get_close_matches(str(key), CLASSROOM_KEYS, n=1, cutoff=0.75)
        if key not in CLASSROOM_KEYS and close:
            raise IdentityError(f"[classroom] has {key!r}: did you mean {close[0]}? e.g. {_EXAMPLE}.")
    names = section.get("names", {})
    if not isinstance(names, Mapping):
        raise IdentityError(
            '[classroom.names] must map e-mail addresses to display names, e.g. "a@school.example" = "Ada".'
        )
    clean_names = {}
    for email, name in names.items():
        if not isinstance(name, str) or not name.strip():
            raise IdentityError(f"[classroom.names] {email!r} must be a display name, not {name!r}.")
        clean_names[str(email).strip().lower()] = name.strip()
    return Classroom(
        teachers=_emails(section, "teachers"),
        admins=_emails(section, "admins"),
        names=MappingProxyType(clean_names),
    )


def user_from_claims(claims: Mapping, classroom: Mapping | Classroom | None) -> User:
    """The User behind a signed-in session's OpenID Connect claims (st.user), with the role the
    classroom configuration gives their e-mail. Raises IdentityError if the claims name nobody."""
    room = classroom_from_secrets(classroom)
    email = claims.get("email")
    trusted = isinstance(email, str) and "@" in email and claims.get("email_verified") is not False
    email = email.strip().lower() if trusted and isinstance(email, str) else None
    sub = claims.get("sub")
    sub = str(sub).strip() if sub is not None else ""
    user_id = email or sub
    if not user_id:
        raise IdentityError("The identity provider sent neither an e-mail nor a subject (sub) claim.")
    if user_id in RESERVED_IDS:
        raise IdentityError(f"The identity provider's subject {user_id!r} is reserved by MNIST Lab.")
    claimed_name = claims.get("name")
    if email and email in room.names:
        name = room.names[email]
    elif isinstance(claimed_name, str) and claimed_name.strip():
        name = claimed_name.strip()
    else:
        name = email.split("@", 1)[0] if email else sub
    return User(user_id, name, room.role_of(email))


# --- the [auth] section: what Streamlit's st.login needs --------------------------------------------

AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
MIN_COOKIE_SECRET = 32
_SECRET_HINT = 'python -c "import secrets; print(secrets.token_hex(32))"'


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def auth_problem(section: object) -> str | None:
    """What is wrong with an `[auth]` section, in one sentence that says what to set; None if it has
    everything st.login() needs. Checks the shape only; `provider_problem` asks the provider."""
    if not isinstance(section, Mapping):
        return "[auth] must be a table (an [auth] section) with " + ", ".join(AUTH_KEYS) + "."
    missing = [k for k in AUTH_KEYS if not (isinstance(section.get(k), str) and section[k].strip())]
    if missing:
        named = [k for k, v in section.items() if isinstance(v, Mapping) and "client_id" in v]
        hint = (
            f" (MNIST Lab signs in with the one provider set directly in [auth]; move the keys of "
            f"[auth.{named[0]}] into [auth])"
            if named
            else ""
        )
        return f"[auth] is missing {', '.join(missing)}: set {' and '.join(missing)} in [auth]{hint}."
    redirect = urlsplit(section["redirect_uri"].replace("{port}", "8501"))
    if redirect.scheme not in ("http", "https") or not redirect.netloc:
        return (
            "[auth] redirect_uri must be the app's absolute address ending in /oauth2callback, "
            f"e.g. https://lab.school.example/oauth2callback, not {section['redirect_uri']!r}."
        )
    if not redirect.path.endswith("/oauth2callback"):
        return (
            "[auth] redirect_uri must end in /oauth2callback (Streamlit's sign-in callback), e.g. "
            f"{redirect.scheme}://{redirect.netloc}/oauth2callback; register that address with the provider."
        )
    if len(section["cookie_secret"]) < MIN_COOKIE_SECRET:
        return (
            f"[auth] cookie_secret is shorter than {MIN_COOKIE_SECRET} characters: anyone who guesses it "
            f"can sign in as a teacher. Set a random one, e.g. from {_SECRET_HINT}."
        )
    meta = urlsplit(section["server_metadata_url"])
    if meta.scheme not in ("http", "https") or not meta.netloc:
        return (
            "[auth] server_metadata_url must be the provider's absolute discovery address, e.g. "
            "https://accounts.google.com/.well-known/openid-configuration, not "
            f"{section['server_metadata_url']!r}."
        )
    if meta.scheme == "http" and not _is_loopback(meta.hostname):
        return (
            "[auth] server_metadata_url must use https (plain http is allowed only for a provider on this "
            f"machine), not {section['server_metadata_url']!r}."
        )
    return None


PROVIDER_KEYS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


def provider_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """Ask the identity provider for its OpenID Connect discovery document: None if it answers with
    one that sign-in can use, else what went wrong and what to check, in one sentence."""
    where = f"[auth] server_metadata_url ({url})"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (checked http(s))
            body = response.read(1_000_000)
    except urllib.error.HTTPError as exc:
        return f"The identity provider answered {exc.code} for {where}: check the address."
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return (
            f"The identity provider cannot be reached at {where}: {reason}. Check the address and "
            "that the provider is up and reachable from this server."
        )
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return f"{where} did not answer with an OpenID Connect discovery document (JSON): check the address."
    missing = [k for k in PROVIDER_KEYS if not isinstance(document.get(k), str)]
    if missing:
        return (
            f"{where} answered without {', '.join(missing)}: it is not an OpenID Connect discovery "
            "document. Use the provider's address ending in /.well-known/openid-configuration."
        )
    return None
