"""Who is acting: users, their classroom roles, and checks of the sign-in configuration.

No Streamlit here. pages/ui/signin.py reads the secrets file's `[auth]` and `[classroom]` sections and
the signed-in user's OpenID Connect claims (st.user), and hands them to these functions as plain
mappings; the resulting `User` is what the job API receives as the acting user. Without sign-in the
app acts as `LOCAL` (one local user who owns and controls everything), the command line as `ADMIN`.

A user's `id` is the provider's e-mail claim, lower-cased, when the provider vouches for it
(`email_verified: true`; `[auth] require_email_verified = false` also trusts an e-mail sent without
that claim, for a provider that verifies every address but does not say so), else its `sub`
("sub:..." where the subject looks like an e-mail, so it can never pose as someone's address).
Roles come only from configuration, and only a verified e-mail earns one:

    [classroom]
    teachers = ["t@school.example"]          # may see and control every learner's runs
    admins = ["head@school.example"]         # optional; everything teachers may, and more
    allowed_domains = ["school.example"]     # optional: who may sign in at all (with allowed_emails)
    allowed_emails = ["guest@other.example"]
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


class NotInClass(IdentityError):
    """A signed-in account the class's allow-list does not admit: it gets no page and no compute."""


# --- the classroom: roles and display names ---------------------------------------------------------

CLASSROOM_KEYS = ("teachers", "admins", "names", "allowed_domains", "allowed_emails")
_EXAMPLE = 'teachers = ["t@school.example"]'


@dataclass(frozen=True)
class Classroom:
    teachers: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allowed_domains: frozenset[str] = frozenset()  # empty, with allowed_emails: whoever signs in
    allowed_emails: frozenset[str] = frozenset()

    def role_of(self, email: str | None) -> str:
        email = (email or "").lower()
        if email in self.admins:
            return "admin"
        if email in self.teachers:
            return "teacher"
        return "learner"

    @property
    def restricted(self) -> bool:
        return bool(self.allowed_domains or self.allowed_emails)

    def admits(self, email: str | None) -> bool:
        """Whether a verified e-mail (None: none) may use the app: everyone without an allow-list;
        with one, the listed addresses, the listed domains' (exactly, no subdomains), teachers and
        admins."""
        if not self.restricted:
            return True
        email = (email or "").lower()
        if not email:
            return False
        listed = self.allowed_emails | self.teachers | self.admins
        return email in listed or email.rpartition("@")[2] in self.allowed_domains


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


def _domains(section: Mapping) -> frozenset[str]:
    value = section.get("allowed_domains", [])
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise IdentityError(
            "[classroom] allowed_domains must be a list of e-mail domains, e.g. allowed_domains = "
            f'["school.example"]; it is {type(value).__name__} {value!r}.'
        )
    out = set()
    for item in value:
        domain = item.strip().lower().removeprefix("@") if isinstance(item, str) else ""
        if "." not in domain or "@" in domain or any(ch.isspace() for ch in domain):
            raise IdentityError(
                f"[classroom] allowed_domains must hold e-mail domains such as school.example; {item!r} "
                "is not one."
            )
        out.add(domain)
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
        allowed_domains=_domains(section),
        allowed_emails=_emails(section, "allowed_emails"),
    )


def _verified(claim: object, require_verified: bool) -> bool:
    """The provider vouches for the e-mail: `email_verified` true (some providers send the string
    "true"); without the claim, only where the configuration does not require it."""
    if claim is True or (isinstance(claim, str) and claim.strip().lower() == "true"):
        return True
    return claim is None and not require_verified


def user_from_claims(
    claims: Mapping, classroom: Mapping | Classroom | None, require_verified: bool = True
) -> User:
    """The User behind a signed-in session's OpenID Connect claims (st.user), with the role the
    classroom configuration gives their e-mail. An e-mail counts only if the provider marks it
    verified (`require_verified=False`: also if it sends no `email_verified` claim at all). Raises
    NotInClass for an account the class's allow-list does not admit, IdentityError if the claims
    name nobody."""
    room = classroom_from_secrets(classroom)
    email = claims.get("email")
    trusted = (
        isinstance(email, str) and "@" in email and _verified(claims.get("email_verified"), require_verified)
    )
    email = email.strip().lower() if trusted and isinstance(email, str) else None
    if not room.admits(email):
        sent = claims.get("email")
        unconfirmed = f"the address {sent}" if isinstance(sent, str) else "an e-mail address"
        why = f"{email} is not on the class list" if email else f"the provider did not confirm {unconfirmed}"
        raise NotInClass(
            f"This account is not in this class: {why}. Sign out and sign in with your school account, "
            "or ask your teacher to add you."
        )
    sub = claims.get("sub")
    sub = str(sub).strip() if sub is not None else ""
    if "@" in sub:
        sub = "sub:" + sub  # a subject never takes over the id of someone's verified e-mail
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
        name = email.split("@", 1)[0] if email else sub.removeprefix("sub:")
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


REQUIRE_VERIFIED_KEY = "require_email_verified"  # [auth]: false trusts e-mails sent without the claim


def require_verified(section: Mapping) -> bool:
    """Whether an e-mail needs the provider's `email_verified: true` (the default) to count."""
    return section.get(REQUIRE_VERIFIED_KEY, True) is not False


def _plain_http_off_loopback(section: Mapping, prefix: str = "") -> tuple[str, str] | None:
    """The first (key, address) of `section` (nested tables too) that is plain http to another
    machine: sign-in secrets and tokens would cross the network readable."""
    for key, value in section.items():
        if isinstance(value, Mapping):
            found = _plain_http_off_loopback(value, f"{prefix}{key}.")
            if found:
                return found
        elif isinstance(value, str):
            url = urlsplit(value.strip().replace("{port}", "8501"))
            if url.scheme.lower() == "http" and url.netloc and not _is_loopback(url.hostname):
                return prefix + str(key), value
    return None


def auth_problem(section: object) -> str | None:
    """What is wrong with an `[auth]` section, in one sentence that says what to set; None if it has
    everything st.login() needs. Checks the shape only; `provider_problem` asks the provider. Every
    address must be https, except one on this machine (loopback)."""
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
    plain = _plain_http_off_loopback(section)
    if plain:
        return (
            f"[auth] {plain[0]} must use https (plain http is allowed only for an address on this "
            f"machine, 127.0.0.1 or localhost), not {plain[1]!r}: serve the app behind https "
            "(docs/classroom.md)."
        )
    if not isinstance(section.get(REQUIRE_VERIFIED_KEY, True), bool):
        return (
            f"[auth] {REQUIRE_VERIFIED_KEY} must be true or false (false: also trust an e-mail the "
            f"provider sends without email_verified), not {section[REQUIRE_VERIFIED_KEY]!r}."
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
    endpoints = {k: v for k, v in document.items() if k.endswith("_endpoint") or k == "jwks_uri"}
    plain = _plain_http_off_loopback({k: v for k, v in endpoints.items() if isinstance(v, str)})
    if plain:
        return (
            f"{where} names a plain-http {plain[0]} ({plain[1]}): the provider must use https off "
            "this machine, or sign-in tokens cross the network readable."
        )
    return None
