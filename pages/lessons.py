"""Lessons: predict a classic finding, run its experiment, and get a verdict from your own numbers."""

import streamlit as st

from mnist_core.figures.compare import runs_batch_figure, runs_epoch_figure
from mnist_core.jobs.disk import DiskBudgetError
from mnist_core.jobs.store import RunError
from mnist_core.lessons import attempts as lessons
from mnist_core.lessons.book import BY_KEY, LESSONS
from pages.ui.charts import show_chart
from pages.ui.faults import guarded
from pages.ui.live import LESSON_EVERY_S, timed
from pages.ui.resources import job_manager, progress_text
from pages.ui.shell import DRAW, EVALUATE, INSIDE, RUNS, TRAIN, ensure_app_shell
from pages.ui.signin import current_user

ensure_app_shell()
jobs = job_manager()
user = current_user()
NUMBER = {lesson.key: n for n, lesson in enumerate(LESSONS, 1)}
STATE_ICON = {
    "not started": "○",
    "predicted": "◔",
    "in progress": "◑",
    "right": "✓",
    "measured otherwise": "✗",
}
PAGES = dict(train=TRAIN, runs=RUNS, evaluate=EVALUATE, draw=DRAW, inside=INSIDE)

st.title("Lessons")
st.write(
    "Eight classic findings about how networks learn. For each one, predict what will happen, run "
    "the experiment (under 90 seconds of training), and see whether your own runs agree: the verdict "
    "is worked out from the numbers your runs measured, not from an answer key."
)
rows = lessons.overview(jobs.store, user.id, list(LESSONS))
state = {r["key"]: r["state"] for r in rows}
judged = sum(s in ("right", "measured otherwise") for s in state.values())
right = sum(s == "right" for s in state.values())
st.progress(
    judged / len(LESSONS), text=f"{judged} of {len(LESSONS)} lessons judged · {right} predicted right"
)

st.caption("   ".join(f"{STATE_ICON[state[k.key]]} {NUMBER[k.key]}. {k.title}" for k in LESSONS))
key = st.selectbox(  # the label stays fixed: a label that changes would not redraw in the browser
    "Lesson",
    [lesson.key for lesson in LESSONS],
    key="lesson_key",
    format_func=lambda k: f"{NUMBER[k]}. {BY_KEY[k].title}",
)
lesson = BY_KEY[key]
attempt = lessons.load_attempt(jobs.store, user.id, key)

st.subheader(f"{NUMBER[key]}. {lesson.title}")
st.caption(
    f"{STATE_ICON[state[key]]} Your progress: {state[key]}"
    + (f" · attempt {attempt.number}" if attempt.number > 1 else "")
)
st.markdown(f"**The question.** {lesson.question}")
choice_keys = [c.key for c in lesson.choices]
choice = st.radio(
    "Your prediction",
    choice_keys,
    index=choice_keys.index(attempt.prediction) if attempt.prediction in choice_keys else None,
    format_func=lambda k: lesson.choice(k).text,  # type: ignore[union-attr]
    disabled=bool(attempt.runs),
    key=f"prediction_{key}_{attempt.number}",
)
st.caption(
    f"**Measured:** {lesson.measures}. **The experiment:** "
    + "; ".join(a.label for a in lesson.arms)
    + f" ({len(lesson.arms)} runs, one after another, through the normal queue)."
    + (
        f" On this server every lesson run trains on at most {lessons.images_cap():,} images "
        f"(`{lessons.IMAGES_ENV}`), so the numbers can differ from the question's."
        if lessons.images_cap()
        else ""
    )
)


def submit(first: bool) -> None:
    """Record the prediction (first time) and queue what can start; errors become one message."""
    try:
        if first:
            lessons.predict(jobs.store, attempt, str(choice), lesson)
        note = (lessons.advance if first else lessons.retry)(jobs, lesson, attempt, user)
    except (RunError, DiskBudgetError) as exc:  # a class rule, the disk budget, a bad config
        st.error(str(exc), icon=":material/block:")
        return
    if note:
        st.info(note)
    st.rerun()


if not attempt.runs:
    if st.button(
        "Record my prediction and run the experiment",
        type="primary",
        icon=":material/science:",
        disabled=choice is None,
        key="lesson_start",
        help="Your prediction is saved first and cannot change once the runs start.",
    ):
        submit(first=True)
    if choice is None:
        st.caption("Choose a prediction first: it is recorded before anything runs.")


def live_curves(p: lessons.Progress) -> None:
    batches, epochs = {}, {}
    for arm in lesson.arms:
        run = p.runs.get(arm.name)
        if run is None:
            continue
        rows = jobs.store.batch_losses(run.id)
        if rows:
            per_epoch = (run.progress or {}).get("batches") or len(rows)
            batches[arm.label] = ([r[0] for r in rows], [min(r[2], 10.0) for r in rows], per_epoch)
        epochs[arm.label] = jobs.store.epochs(run.id)
    if batches:
        show_chart(runs_batch_figure(batches), key="lesson_batches")
    if any(epochs.values()):
        show_chart(runs_epoch_figure(epochs), key="lesson_epochs")


@st.cache_resource(max_entries=32, show_spinner="Measuring your runs...")
def measured(lesson_key: str, run_versions: tuple, _attempt: lessons.Attempt):
    """The verdict and the figures, once per set of finished runs (they never change after)."""
    chosen = BY_KEY[lesson_key]
    p = lessons.progress(jobs.store, chosen, _attempt)
    figures = chosen.figures(lessons.Evidence(jobs.store, p.runs), p.numbers) if p.status == "judged" else []
    return p, figures


def open_next(p: lessons.Progress) -> None:
    step = lesson.next_step
    run = p.runs.get(step.arm)
    if step.page == "train" and run is not None:
        st.session_state.train_prefill = {**run.config, **step.changes}
    elif step.page == "runs":
        st.session_state.runs_prefill = [r.id for r in p.runs.values()]
    elif run is not None:
        st.session_state.selected_run = run.id
        if step.page == "evaluate" and {"a", "b"} <= set(p.numbers):
            st.session_state.cm_cell = (p.numbers["a"], p.numbers["b"])
    st.switch_page(PAGES[step.page])


def verdict(p: lessons.Progress, figures: list) -> None:
    mine = lesson.choice(p.prediction)
    truth = lesson.choice(p.outcome)
    if p.correct:
        st.success(f"**Your prediction was right.** {p.explanation}", icon=":material/check_circle:")
    else:
        st.warning(
            f"**Your runs measured otherwise.** You predicted *{mine.text if mine else '?'}*; the numbers "
            f"say *{truth.text if truth else p.outcome}*. {p.explanation}",
            icon=":material/lightbulb:",
        )
    st.markdown(f"**The finding.** {lesson.finding}")
    groups: list[tuple[str, list]] = []  # figures under one caption sit side by side
    for caption, fig in figures:
        if groups and groups[-1][0] == caption:
            groups[-1][1].append(fig)
        else:
            groups.append((caption, [fig]))
    for caption, figs in groups:
        st.caption(caption)
        for col, fig in zip(st.columns(len(figs)), figs):
            show_chart(fig, container=col, config={"displayModeBar": False})
    go_col, redo_col = st.columns([3, 2])
    if go_col.button(
        lesson.next_step.label, type="primary", icon=":material/arrow_forward:", key="lesson_next"
    ):
        open_next(p)
    if redo_col.button("Redo this lesson", icon=":material/replay:", key="lesson_redo"):
        lessons.redo(jobs.store, attempt)
        st.rerun()


@guarded
def experiment(lesson_key: str) -> None:
    """The runs of the attempt: live while they train, then the verdict."""
    current = lessons.load_attempt(jobs.store, user.id, lesson_key)
    note = ""
    try:
        p = lessons.progress(jobs.store, lesson, current, judge=False)
        if p.status == "running" and p.waiting:
            note = lessons.advance(jobs, lesson, current, user)  # arms that wait for an earlier one
            p = lessons.progress(jobs.store, lesson, current, judge=False)
    except (RunError, DiskBudgetError) as exc:
        st.error(str(exc), icon=":material/block:")
        return
    was = st.session_state.get("lesson_was_running")
    st.session_state.lesson_was_running = p.status == "running"
    if was and p.status != "running":
        st.rerun()  # the last run just ended: redraw the page once, with the verdict
    if p.status == "running":
        for arm in lesson.arms:
            run = p.runs.get(arm.name)
            if run is None:
                after = f" (after the {', '.join(arm.after)} run)" if arm.after else ""
                st.progress(0.0, text=f"**{arm.label}** · waiting to be queued{after}")
            elif run.active:
                done, text = progress_text(run)
                st.progress(done, text=f"**{arm.label}** · {text}")
            else:
                st.progress(1.0, text=f"**{arm.label}** · {run.status}")
        if note:
            st.info(note)
        live_curves(p)
    elif p.status == "problem":
        st.error(p.message, icon=":material/error:")
        if st.button("Retry the runs that did not finish", icon=":material/refresh:", key="lesson_retry"):
            submit(first=False)
        live_curves(p)
    elif p.status == "judged":
        versions = tuple(sorted((arm, r.id, r.finished) for arm, r in p.runs.items()))  # an Extend changes it
        done, figures = measured(lesson_key, versions, current)
        if lessons.record_verdict(jobs.store, current, done):
            st.rerun()  # the overview at the top counts this verdict now
        verdict(done, figures)


if attempt.runs:
    st.divider()
    running = lessons.progress(jobs.store, lesson, attempt, judge=False).status == "running"
    (timed(experiment, LESSON_EVERY_S) if running else experiment)(key)

if attempt.past:
    with st.expander(f"Earlier attempts ({len(attempt.past)})"):
        for old in reversed(attempt.past):
            v = old.get("verdict") or {}
            said = lesson.choice(old.get("prediction"))
            result = "right" if v.get("correct") else "measured otherwise" if v else "not judged"
            st.markdown(f"**Attempt {old['number']}:** predicted *{said.text if said else '-'}* · {result}")
            if v.get("explanation"):
                st.caption(v["explanation"])
