"""Shared UI pieces (not a page): cached core objects and the sidebar list of active runs."""

from __future__ import annotations

import functools
import importlib.util
import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import NoReturn

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from mnist_core.data.mnist import DataError, load_mnist
from mnist_core.jobs.classroom import ClassPolicy, display_name
from mnist_core.jobs.identity import (
    LOCAL,
    IdentityError,
    User,
    auth_problem,
    classroom_from_secrets,
    provider_problem,
    user_from_claims,
)
from mnist_core.jobs.manager import JobManager
from mnist_core.jobs.repair import rebuild
from mnist_core.jobs.store import DB_NAME, StoreDamaged, is_damage
from mnist_core.learn.config import ConfigError
from mnist_core.learn.evaluate import one_thread
from mnist_core.paths import checkpoints_dir, default_model_path

_HERE = Path(__file__).resolve().parent  # page files by absolute path: any page may be the main script
_shell = threading.local()  # .active is True while app.py runs a page
REBUILD_BUTTON = "Rebuild the run store from the run folders"

# The app's pages, in sidebar order: (file, title, icon).
_PAGE_SPECS = [
    ("home", "Home", ":material/home:"),
    ("lessons", "Lessons", ":material/school:"),
    ("data", "Data", ":material/grid_on:"),
    ("models", "Models", ":material/account_tree:"),
    ("train", "Train", ":material/model_training:"),
    ("runs", "Runs", ":material/stacked_line_chart:"),
    ("wall", "Class wall", ":material/leaderboard:"),
    ("evaluate", "Evaluate", ":material/fact_check:"),
    ("inside", "Inside", ":material/layers:"),
    ("draw", "Draw", ":material/draw:"),
]


def app_pages() -> list:
    """Fresh page objects for st.navigation, on every run. A page object remembers that navigation
    chose it (page.run() checks and clears that), so sessions running at once must not share one."""
    return [
        st.Page(_HERE / f"{name}.py", title=title, icon=icon, default=name == "home")
        for name, title, icon in _PAGE_SPECS
    ]


_NAV_OPTION = "client.showSidebarNavigation"
_NAV_LOCK = threading.Lock()


def app_navigation():
    """st.navigation over the app's pages, in the sidebar. .streamlit/config.toml turns the
    sidebar's navigation off: otherwise a new session lists the files in pages/ (common, canvas,
    confusion: shared modules, not pages) until this call names the app's pages, for seconds on a
    fresh server. The option is on only for the length of this call, one session at a time (it
    is process-wide; st.navigation reads it to place its menu)."""
    with _NAV_LOCK:
        st.set_option(_NAV_OPTION, True)
        try:
            return st.navigation(app_pages())
        finally:
            st.set_option(_NAV_OPTION, False)


# Pages link to each other with these objects (st.page_link, st.switch_page), never with path
# strings; a link only reads the page's identity, so one object per page serves every session.
HOME, LESSONS, DATA, MODELS, TRAIN, RUNS, WALL, EVALUATE, INSIDE, DRAW = app_pages()


@contextmanager
def page_shell():
    """app.py runs the chosen page inside this: it marks the run as going through app.py, and
    turns machine faults into a message (see machine_errors)."""
    _shell.active, _shell.store_message = True, False
    try:
        with machine_errors(), beside_a_run():
            yield
    finally:
        _shell.active, _shell.store_message = False, False


def ensure_app_shell() -> None:
    """Call first on every page: a page always runs inside app.py's navigation and sidebar.

    When a deep link (say /train) is a fresh server's very first request, Streamlit runs that
    page alone through its legacy pages/-folder mode, because app.py has a pages/ folder beside
    it. Calling st.navigation ends that mode for the whole server (its documented effect), and
    the rerun then goes through app.py. Public API only: st.navigation and st.rerun. The
    redirect is tried at most twice per session, so a page can never rerun forever.

    Inside the shell it also opens the run store: a damaged one is found before the page body runs,
    so every page shows the one message that offers the rebuild (see damaged_store) instead."""
    if getattr(_shell, "active", False):
        _store_or_stop()
        return
    tries = st.session_state.get("_shell_redirects", 0)
    if tries >= 2:
        return
    st.session_state._shell_redirects = tries + 1
    st.navigation(app_pages(), position="hidden")
    st.rerun()


POLICY_KEYS = {f.name for f in dataclass_fields(ClassPolicy)}


def configured_policy() -> ClassPolicy:
    """The class's limits and exercise from the secrets file's [classroom] section (none: no limits)."""
    try:
        section = st.secrets.get("classroom") or {}
    except StreamlitSecretNotFoundError:
        return ClassPolicy()
    plain = {k: dict(v) if hasattr(v, "items") else v for k, v in dict(section).items() if k in POLICY_KEYS}
    try:
        return ClassPolicy.from_dict(plain)
    except ConfigError as exc:
        st.error(f"The [classroom] section of the secrets file is invalid: {exc}", icon=":material/error:")
        st.stop()


@st.cache_resource
def job_manager() -> JobManager:
    """One JobManager per server process; its run store opens a connection per thread. A warm
    worker starts warming up now, so the first Start trains at once."""
    manager = JobManager(policy=configured_policy())
    try:
        manager.prepare()
    except Exception:  # a warm worker is an optimisation: without one, runs start cold
        pass
    return manager


def can_control(run, user: User) -> bool:
    """Whether this user's buttons act on this run (the job API enforces the same rule)."""
    return user.is_teacher or run.owner == user.id


def my_runs(runs: list, user: User) -> list:
    """The runs a user's pages reattach to: their own (the local user and admins: every run)."""
    return runs if user.is_admin else [r for r in runs if r.owner == user.id]


@st.cache_resource(show_spinner="Loading MNIST (downloading it on first use)...")
def mnist():
    return load_mnist()


def mnist_or_stop():
    """The dataset, or a clear message and the end of the page."""
    try:
        return mnist()
    except DataError as exc:
        st.error(str(exc))
        st.stop()


def progress_text(run) -> tuple[float, str]:
    """(fraction done, 'epoch 2/5 - batch 120/844 - ETA 0:42 - 3,100 img/s') for an active run."""
    if run.status == "queued":
        return 0.0, f"queued, position {run.queue_position}"
    p = run.progress or {}
    parts = [
        f"epoch {p.get('epoch', 1)}/{run.config['epochs']}",
        f"batch {p.get('batch', 0)}/{p.get('batches') or 1}",
    ]
    if run.eta_s is not None:
        parts.append(f"ETA {int(run.eta_s) // 60}:{int(run.eta_s) % 60:02d}")
    if p.get("images_per_s"):
        parts.append(f"{p['images_per_s']:,.0f} img/s")
    return run.fraction_done, " · ".join(parts)


def _store_or_stop() -> None:
    """The rebuild's result once, after its rerun; a damaged store: the message, and no page body."""
    rebuilt = st.session_state.pop("_store_rebuilt", None)
    if rebuilt:
        st.success(rebuilt, icon=":material/build:")
    failed = st.session_state.pop("_store_rebuild_failed", None)
    if failed:
        st.error(failed)
    try:
        job_manager()  # opening the store checks its database (well under a millisecond)
    except StoreDamaged as exc:
        damaged_store(exc)
        st.stop()


def damaged_store(exc: StoreDamaged) -> None:
    """The one message for a damaged runs.db: what happened, that the run folders are intact, and a
    button that rebuilds the store from them (mnist_core.jobs.repair); the next run uses a fresh store."""
    st.error(
        "**The run store's database is damaged**, so the runs cannot be listed, shown or started. "
        f"The file `{exc.db_path}` cannot be read ({exc.detail}). The run folders beside it are "
        "intact: each run's checkpoints hold its settings, its loss curves and its metrics, so the "
        "store can be rebuilt from them. The damaged file is kept aside, not deleted.",
        icon=":material/database:",
    )
    _shell.store_message = True  # once per script run: later store faults in this run stay quiet
    # a callback: it runs before the next script run, whichever script Streamlit runs for the click
    st.button(REBUILD_BUTTON, type="primary", key="rebuild_run_store", on_click=_rebuild, args=(exc.root,))


def _rebuild(root: Path) -> None:
    try:
        report = rebuild(root)
    except (OSError, sqlite3.Error) as failure:
        st.session_state._store_rebuild_failed = (
            f"The rebuild failed ({failure}); the run folders are unchanged. Free some disk space if "
            "it is full, then try again."
        )
        return
    lines = [report.text()]
    lines += [f"Skipped folder {name}: {why}" for name, why in report.skipped]
    lines += [f"Note: {note}" for note in report.notes]
    st.session_state._store_rebuilt = "  \n".join(lines)
    job_manager.clear()  # the next run opens a fresh RunStore on the rebuilt file


@contextmanager
def machine_errors(offer_rebuild: bool = True):
    """Faults of the machine rather than the code (a full disk, a folder gone, a locked or damaged
    database) become one message instead of a traceback; bugs still show as errors. A damaged run
    store gets the rebuild offer on the page (fragments, redrawn on a timer, only point to it)."""
    try:
        yield
    except (StoreDamaged, sqlite3.DatabaseError) as exc:
        if isinstance(exc, sqlite3.DatabaseError) and not is_damage(exc):
            machine_fault(exc)
            return
        damage = exc if isinstance(exc, StoreDamaged) else StoreDamaged(checkpoints_dir() / DB_NAME, str(exc))
        if getattr(_shell, "store_message", False):
            return  # this run already shows the message and the button
        if offer_rebuild:
            damaged_store(damage)
        else:
            st.warning("The run store is damaged: the page offers to rebuild it.", icon=":material/database:")
    except (OSError, sqlite3.Error) as exc:
        machine_fault(exc)


def machine_fault(exc: BaseException) -> None:
    """A full disk, a folder gone, a locked database: one message, not a traceback."""
    st.error(
        f"The machine refused to read or write a file ({exc}). If the disk is full, free some "
        "space and try again; runs and checkpoints saved before this are unchanged.",
        icon=":material/hard_drive:",
    )


def guarded(fn):
    """For fragments: their reruns on a timer do not pass through app.py's page_shell()."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with machine_errors(offer_rebuild=False), beside_a_run():
            return fn(*args, **kwargs)

    return run


@contextmanager
def beside_a_run():
    """Page code runs PyTorch on one thread while a run trains on this machine. The run keeps the
    cores busy, and a team of threads in the dashboard then waits for its members at every step:
    measured on 2 cores beside a run, one image through fast_cnn for its layer table and a 500-digit
    map took 5-50 s instead of a fraction of a second (see evaluate.one_thread)."""
    try:
        busy = job_manager().trains_here()
    except Exception:  # no store to ask: the page reports that itself
        busy = False
    with one_thread() if busy else nullcontext():
        yield


# Each timed rerun costs the browser a re-render, and two timers on one page are two of them: with a
# Chromium page on a run's live view (2 cores), the sidebar's own 2 s timer took Chromium from 0.15
# to 0.21 cores and the run 5-20% of its steps/s. So the sidebar has no timer while the only active
# run is the one the Train page shows live (that page redraws everything when it ends), a slow one
# while nothing is active (a run started elsewhere appears within SIDEBAR_IDLE_EVERY_S).
SIDEBAR_LIVE_EVERY_S = 2.0
SIDEBAR_IDLE_EVERY_S = 10.0


@guarded
def _active_runs_list(watched: str | None = None, active: list | None = None) -> None:
    """Running and queued runs with their progress; `watched` (drawn once, no timer): the run the
    page shows live, named without a progress bar that would stand still. `active`: the list just
    read, when drawn once (a fragment reads it on every rerun: its arguments are those of its
    first call)."""
    if active is None:
        active = [r for r in job_manager().list() if r.active]
    st.caption("ACTIVE RUNS")
    if not active:
        st.caption("None. Start one on the Train page.")
    for run in sorted(active, key=lambda r: (r.status != "running", r.queue_seq)):
        who = f" · {display_name(run)}" if run.owner_name else ""  # whose run, in a signed-in class
        if run.id == watched:
            st.caption(f"**{run.model}** `{run.id[-6:]}`{who} · {run.status}, shown live on this page")
            continue
        done, text = progress_text(run)
        st.progress(done, text=f"**{run.model}** `{run.id[-6:]}`{who} · {text}")


_sidebar_live = st.fragment(run_every=SIDEBAR_LIVE_EVERY_S)(_active_runs_list)
_sidebar_idle = st.fragment(run_every=SIDEBAR_IDLE_EVERY_S)(_active_runs_list)


@guarded
def sidebar_runs(watched: str | None = None) -> None:
    """The sidebar's active runs, on every page; `watched`: the run this page shows live, if any."""
    active = [r for r in job_manager().list() if r.active]
    if active and all(r.id == watched for r in active):
        _active_runs_list(watched, active)
    elif active:
        _sidebar_live()
    else:
        _sidebar_idle()


def watched_run(page) -> str | None:
    """The run the chosen page shows live: the Train page's run (app.py asks before the page runs)."""
    return st.session_state.get("train_run_id") if page.url_path == TRAIN.url_path else None


def model_sources() -> dict[str, str]:
    """Label -> run id ('' for the shipped default model), for every run that has checkpoints."""
    out = {"Default model (better_cnn, shipped)": ""} if default_model_path().is_file() else {}
    jobs = job_manager()
    for run in jobs.list():
        if run.epochs_done and jobs.store.checkpoints(run.id):
            acc = f"{run.best_val_acc:.2%} val" if run.best_val_acc else run.status
            out[f"Run {run.id[-6:]} · {run.model} · {acc}"] = run.id
    return out


def checkpoint_path(run_id: str, epoch="best"):
    """The checkpoint file of the default model, a run's best epoch, or one of its epochs."""
    if not run_id:
        return default_model_path()
    store = job_manager().store
    return store.layout.best_checkpoint(run_id) if epoch == "best" else dict(store.checkpoints(run_id))[epoch]


def choose_checkpoint(prefix: str, columns) -> tuple[str, str, object]:
    """Model and epoch pickers (preselecting the run opened from Train): (label, run id, epoch)."""
    sources = model_sources()
    if not sources:
        st.info("No model yet: train one on the Train page.")
        st.stop()
    labels = list(sources)
    wanted = st.session_state.get("selected_run")
    start = next((i for i, lab in enumerate(labels) if wanted and sources[lab] == wanted), 0)
    if wanted and wanted not in sources.values():
        st.warning(f"Run {wanted} has no checkpoint yet (or was deleted); showing {labels[0]} instead.")
    label = columns[0].selectbox("Model", labels, index=start, key=f"{prefix}_model")
    epoch = "best"
    if sources[label]:
        epochs = ["best"] + [e for e, _ in job_manager().store.checkpoints(sources[label])]
        epoch = columns[1].select_slider(
            "Epoch",
            epochs,
            value="best",
            key=f"{prefix}_epoch",
            help="travel back to an earlier epoch's weights",
        )
    return label, sources[label], epoch


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_model(path: str, mtime: float):
    from mnist_core.learn.checkpoints import load_checkpoint

    return load_checkpoint(path).model


def load_model(path):
    """A checkpoint's model (cached per file version), or None after showing why it failed."""
    from mnist_core.learn.checkpoints import CheckpointError

    try:
        return _cached_model(str(path), path.stat().st_mtime)
    except (CheckpointError, OSError) as exc:
        st.error(f"This model could not be loaded: {exc}")
        return None


# --- sign-in (Streamlit's OpenID Connect: st.login, st.user, st.logout) ---------------------------

SIGN_IN_BUTTON = "Sign in"
SIGN_OUT_BUTTON = "Sign out"
_SECRETS_HINT = "the secrets file (`.streamlit/secrets.toml`, or the file given with `--secrets.files`)"


def current_user() -> User:
    """Who acts in this session; app.py calls it before the page runs, pages and fragments may call
    it again (nothing is cached across sessions, and no network is used once signed in).

    Without an [auth] section in the secrets file: LOCAL, the one local user who owns everything.
    With a valid one: the signed-in user (role from [classroom]), or else a sign-in screen and the end
    of the run. With a broken one (a missing key, a bad address, an unreachable provider, a bad
    [classroom]): one message saying what to set, and the end of the run."""
    try:
        auth = st.secrets.get("auth")
        classroom_section = st.secrets.get("classroom")
    except StreamlitSecretNotFoundError as exc:
        if getattr(exc, "error_id", None) == "no-secrets-found":
            return LOCAL
        _sign_in_broken(f"The secrets file cannot be read: {exc}")  # fail closed: it may hold [auth]
    if auth is None:
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
        return user_from_claims(claims, classroom)
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


def _markdown_text(text: str) -> str:
    """Plain text for st.markdown: a provider's display name is not markup."""
    return "".join("\\" + ch if ch in "\\`*_{}[]<>()#+-.!|~$" else ch for ch in text)


def signed_in_sidebar(user: User) -> None:
    """Who is signed in (name, role) and a Sign out button; nothing without sign-in (LOCAL)."""
    if user == LOCAL:
        return
    with st.container(key="signed_in"):
        st.caption("SIGNED IN")
        st.markdown(f"**{_markdown_text(user.name)}** · {user.role}")
        if st.button(SIGN_OUT_BUTTON, key="sign_out", icon=":material/logout:"):
            st.logout()
