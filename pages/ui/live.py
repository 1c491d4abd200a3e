"""The live view of a run: its heading and controls, its progress, loss chart and per-epoch panel,
followed in place while it trains (one fragment run) or redrawn on a timer."""

import json
import time

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from mnist_core.analysis import inside
from mnist_core.figures.pictures import embedding_picture, map_picture, tile
from mnist_core.figures.training import batch_loss_figure, epoch_figure, gap_sentence
from mnist_core.jobs.classroom import display_name
from mnist_core.jobs.disk import DiskBudgetError
from mnist_core.jobs.store import RunError
from mnist_core.learn.checkpoints import load_checkpoint
from mnist_core.words import plain_markdown

from .announce import announce
from .charts import show_chart
from .convergence import convergence_view
from .faults import guarded
from .links import link_to
from .resources import can_control, job_manager, mnist_or_stop, progress_text
from .shell import DRAW, EVALUATE
from .signin import current_user


def finished_summary(run) -> None:
    """Figures of a finished run, then what to do next: evaluate, draw, or train longer."""
    if run.status == "completed":
        cols = st.columns(4)
        cols[0].metric("Best validation accuracy", f"{run.best_val_acc:.2%}" if run.best_val_acc else "n/a")
        cols[1].metric("Test accuracy", f"{run.test_acc:.2%}" if run.test_acc is not None else "n/a")
        cols[2].metric("Training time", f"{run.train_seconds:.0f} s")
        cols[3].metric("Images / s", f"{run.images_per_s:,.0f}" if run.images_per_s else "n/a")
    go_eval, go_draw, more_col, extend_col = st.columns([2, 2, 1, 2], vertical_alignment="bottom")
    if run.epochs_done:
        if go_eval.button("Evaluate this run", icon=":material/fact_check:", width="stretch"):
            link_to(EVALUATE, run=run.id)
        if go_draw.button("Draw with this run", icon=":material/draw:", width="stretch"):
            link_to(DRAW, run=run.id)
    more = more_col.number_input("More epochs", 1, 100, 2, key="extend_n")
    mine = can_control(run, current_user())
    if extend_col.button(
        f"Extend by {more} epochs", icon=":material/add:", width="stretch", disabled=not mine
    ):
        try:
            job_manager().extend(run.id, int(more), actor=current_user())
        except (DiskBudgetError, RunError) as exc:
            st.error(str(exc), icon=":material/hard_drive:")
        else:
            st.rerun()


# Every learner watching the same run asks for the same figures each second: build each once.
@st.cache_resource(max_entries=64, show_spinner=False)
def batch_chart(
    run_id: str, last_step: int, count: int, smoothing: float, batches: int | None, x_max: float | None, _rows
):
    return batch_loss_figure([r[0] for r in _rows], [r[2] for r in _rows], smoothing, batches, x_max=x_max)


@st.cache_resource(max_entries=64, show_spinner=False)
def epoch_chart(run_id: str, records: str, _epochs):
    return epoch_figure(_epochs)


def heading(run) -> str:
    return f"Run `{run.id}` · {run.model} · {run.status}"


# How the live view keeps up with a run. A fragment rerun on a timer costs the browser a re-render of
# the whole page (the script's run state changes twice a rerun) and redraws every chart in it, changed
# or not. So while a run trains, one fragment run *follows* it in place for up to FOLLOW_MAX_S: it
# reads the store every READ_EVERY_S and sends only what changed (the loss chart and the bar together
# every LIVE_EVERY_S, the per-epoch panel when an epoch ends); the fragment's timer, whose ticks wait
# meanwhile, starts the next one at once. Every delta costs the browser a redraw whatever it changes
# (a bar moved every 0.5 s on its own cost as much as the timed reruns), hence one per LIVE_EVERY_S.
# Streamlit serves a click of the page while a fragment runs at its next session-state read (every
# POLL_S here), but holds a click *in* the fragment until the fragment run ends: so the view's
# controls (Stop, the smoothing) are the page's, above the followed part. Streamlit's own
# "Running..." widget would spin in the header all along (0.06 browser cores, and a Stop that stops
# the page, not the run): the run view hides it while its run is active, its bar says what runs.
FOLLOW_MAX_S = 60.0


FOLLOW_START_S = 0.5  # the follow timer: how soon after the page is drawn its run is followed


LIVE_EVERY_S = 2.0  # the loss chart while following; the whole view's cadence when not following


POLL_S = 0.1


READ_EVERY_S = 0.25


EPOCHS_EVERY_S = 1.0  # how often the store is asked whether an epoch ended


FIRST_POINT_WAIT_S = 15.0


FINISH_WINDOW_S = 3.0


TRAINED_TEXT = "every batch trained · the last validation, the test pass and saving"  # then it ends


HIDE_RUNNING_CSS = "<style>[data-testid='stStatusWidget'] { display: none !important; }</style>"


def awaiting_first_point(run) -> bool:
    """This learner pressed Start on this run a moment ago and it has not trained a batch yet."""
    started = st.session_state.get("train_started_at")
    return (
        run.status == "running"
        and not (run.progress or {}).get("step")
        and st.session_state.get("train_started_id") == run.id
        and started is not None
        and time.time() - started < FIRST_POINT_WAIT_S
    )


def finishing(run) -> bool:
    """A run in its last FINISH_WINDOW_S (its test pass included): its end is waited for in place, so
    that "completed" and the summary appear as it ends rather than up to LIVE_EVERY_S later."""
    return run.status == "running" and run.eta_s is not None and run.eta_s <= FINISH_WINDOW_S


def run_head(run) -> float:
    """The run's heading, and its controls: Stop while it is active, else its outcome and summary;
    the smoothing of its loss chart. Drawn by the page's script runs only. Returns the smoothing."""
    st.subheader(heading(run))
    user = current_user()
    if not can_control(run, user):
        st.caption(f"{plain_markdown(display_name(run))}'s run: you can watch it, not change it.")
    if run.active:
        st.html(HIDE_RUNNING_CSS)
        stop_col, smooth_col = st.columns([1, 5], vertical_alignment="bottom")
        if stop_col.button(
            "Stop", icon=":material/stop:", key="stop_run", disabled=not can_control(run, user)
        ):
            job_manager().stop(run.id, actor=user)
            st.rerun()
    else:
        if run.reason:
            (st.error if run.status in ("failed", "interrupted") else st.info)(run.reason)
        if run.status == "failed":
            with st.expander("Log of the run"):
                st.code(job_manager().log_tail(run.id) or "(empty)")
        finished_summary(run)
        smooth_col = st.container()
    if not (run.active or job_manager().store.batch_times(run.id)):
        return 0.6
    return smooth_col.slider(
        "Smoothing",
        0.0,
        0.99,
        0.6,
        0.01,
        key="smoothing",
        help="exponential moving average of the batch losses",
    )


def epoch_words(epochs: list[dict]) -> str:
    """What the live region says when an epoch ends: 'Epoch 2 done: validation accuracy 97.1%.'"""
    last = epochs[-1]
    acc = last.get("val_acc", last.get("train_acc"))
    which = "validation" if "val_acc" in last else "training"
    tail = f": {which} accuracy {acc:.1%}." if acc is not None else "."
    return f"Epoch {last['epoch']} done{tail}"


class LiveView:
    """A run's progress, loss chart and per-epoch panel as placeholders: each is drawn again only when
    what it shows has changed."""

    def __init__(self, run_id: str, smoothing: float):
        self.run_id, self.smoothing = run_id, smoothing
        self.chart_at, self.chart_rows, self.epochs_shown = 0.0, -1, -1
        self.trained = False  # every batch trained: the bar said so

    def draw(self, run) -> None:
        if run.precision:  # the worker says which once it starts: after the page's script run
            st.caption(f"Precision: {run.precision}")
        self.bar = st.progress(*progress_text(run)) if run.active else None
        with st.container(key="batch_chart"):
            self.chart_box = st.empty()
        self.chart_text = st.empty()  # its finding and numbers, redrawn with it
        self.convergence_box = st.empty()  # the epochs overlaid: has it converged?
        self.epochs_box = st.empty()
        self.chart(run)
        self.epochs()

    def chart(self, run, at_once: bool = False) -> bool:
        """The loss per batch, at most every LIVE_EVERY_S (at once while none is shown, or when asked),
        only when there are new batches. Whether it was drawn."""
        if not at_once and self.chart_rows > 0 and time.monotonic() - self.chart_at < LIVE_EVERY_S:
            return False
        rows = job_manager().store.batch_losses(run.id)
        if len(rows) == self.chart_rows:
            return False
        if rows:
            batches = (run.progress or {}).get("batches")
            # while it trains, the x axis spans the whole run (epochs); once it ended, what it trained
            x_max = run.config["epochs"] if run.active and batches else None
            fig = batch_chart(run.id, rows[-1][0], len(rows), self.smoothing, batches, x_max, rows)
            show_chart(
                fig, container=self.chart_box, text_container=self.chart_text.container(), width="stretch"
            )
        elif run.active:
            self.chart_box.caption("Waiting for the first batch...")
        self.chart_at, self.chart_rows = time.monotonic(), len(rows)
        return True

    def epochs(self) -> None:
        """Train vs validation per epoch, the overfitting indicator and the inside panel: once an epoch."""
        try:
            epochs = job_manager().store.epochs(self.run_id)
        except RunError:
            return
        if len(epochs) != self.epochs_shown and epochs:
            with self.epochs_box.container():
                epoch_panel(self.run_id, epochs)
                announce(epoch_words(epochs))
        if len(epochs) != self.epochs_shown:
            with self.convergence_box.container():
                convergence_view(self.run_id, epochs, self.smoothing)
        self.epochs_shown = len(epochs)

    def follow(self, run, until_s: float) -> None:
        """Keep the view up to date in place until the run ends (then the page is drawn again with its
        summary) or until_s passes. Waits for the first point and for a run in its last seconds
        beyond until_s, as a learner waits for those."""
        read_at = epochs_at = time.monotonic()
        while run.active:
            if time.monotonic() >= until_s and not (awaiting_first_point(run) or finishing(run)):
                return
            time.sleep(POLL_S)
            st.session_state.get("smoothing")  # where Streamlit serves a click of the page meanwhile
            if time.monotonic() - read_at < READ_EVERY_S:
                continue
            status = run.status
            run, read_at = job_manager().get(run.id), time.monotonic()
            if run.active and run.status != status:  # a queued run started: its heading says so
                st.rerun()
            # every batch trained: its validation, test pass and last writes remain, and the page is
            # drawn again, whole, as it ends; once the whole curve and the bar saying what is left,
            # then no redraw to take CPU from them
            training = run.active and run.fraction_done < 1.0
            if training and self.chart(run):  # the bar moves with the chart: one redraw, not two
                self.bar.progress(*progress_text(run))
            elif run.active and not training and not self.trained:
                self.chart(run, at_once=True)
                self.bar.progress(1.0, text=TRAINED_TEXT)
                self.trained = True
            if training and time.monotonic() - epochs_at >= EPOCHS_EVERY_S:
                self.epochs()
                epochs_at = time.monotonic()
        # it ended: say so in place at once, then the page with its heading and summary
        self.bar.progress(1.0 if run.status == "completed" else run.fraction_done, text=run.status)
        st.session_state.train_was_active = False
        st.rerun()


@guarded
def live_view(run_id: str, smoothing: float, follow_s: float = 0.0) -> None:
    """A run's progress, loss per batch and per-epoch panel; while it is active, followed in place for
    follow_s (and while a learner waits for its first point or its end)."""
    try:
        run = job_manager().get(run_id)
    except RunError:
        return  # the page's own run said why
    was_active = st.session_state.get("train_was_active", run.active)
    st.session_state.train_was_active = run.active
    if was_active and not run.active:
        st.rerun()  # the run ended between two views: redraw the page once with the summary
    view = LiveView(run_id, smoothing)
    view.draw(run)
    if run.active:
        view.follow(run, time.monotonic() + follow_s)


EPOCH_FIGURES = (  # label, record key, format: one epoch's figures, read from its record
    ("train loss", "train_loss", ".4f"),
    ("validation loss", "val_loss", ".4f"),
    ("train accuracy", "train_acc", ".2%"),
    ("validation accuracy", "val_acc", ".2%"),
)


CURVES_LATER = "Train against validation per epoch is drawn as curves from the second epoch on."


def epoch_panel(run_id: str, epochs: list[dict]) -> None:
    """Train vs validation per epoch: curves from two epochs on. After one epoch a curve is a dot, and
    its figures say more as numbers (a chart also costs the browser a share of a core beside the run)."""
    if len(epochs) > 1:
        show_chart(epoch_chart(run_id, json.dumps(epochs), epochs), width="stretch")
    else:
        [record] = epochs
        for col, (label, key, fmt) in zip(st.columns(len(EPOCH_FIGURES)), EPOCH_FIGURES):
            value = record.get(key)
            col.metric(f"Epoch {record['epoch']} · {label}", "n/a" if value is None else format(value, fmt))
        st.caption(CURVES_LATER)
    level, sentence = gap_sentence(epochs)
    getattr(st, level)(f"**Overfitting indicator.** {sentence}")
    saved = job_manager().store.checkpoints(run_id)
    if saved:
        filters, filters_caption, emap, emap_caption = inside_panel(str(saved[-1][1]))
        st.caption(f"**Inside the network at epoch {saved[-1][0]}** (more on the Inside page)")
        f_col, m_col = st.columns(2)
        f_col.image(
            filters, caption=filters_caption, alt=f"first-layer filters: {filters_caption}", width="stretch"
        )
        m_col.image(emap, caption=emap_caption, alt=f"feature maps: {emap_caption}", width="stretch")


@st.cache_resource(max_entries=8, show_spinner=False)
def inside_panel(path: str):
    """First-layer filters and a PCA map of a fixed 500-digit sample, once per epoch checkpoint, as
    pictures: this panel sits under a chart that redraws every few seconds, and a browser redraws a
    picture for nothing, a chart for a share of a core (the interactive ones are on the Inside page)."""
    model = load_checkpoint(path).model
    data = mnist_or_stop()
    [emap] = inside.embedding_maps([model], inside.test_inputs(data), data.test_labels, 500, "pca")
    kind, weights = inside.first_weight(model)
    shown = weights[:32]
    filters = map_picture(tile(shown, 8), signed=True, target=520)
    mistakes = emap.preds != emap.labels
    return (
        filters,
        f"first-layer {'filters' if kind == 'conv' else 'weights'} ({len(shown)} of {len(weights)}; "
        "red raises a unit's input, blue lowers it)",
        embedding_picture(emap.xy, emap.labels, mistakes, width=560, height=300),
        f"PCA map of 500 test digits · separation {emap.separation:.0%} · {int(mistakes.sum())} mistakes",
    )


def follows_in_place(run_id: str) -> bool:
    """Whether this page follows its run in place: while a run follows, no other timer of the page
    gets a turn, so only when the sidebar has none (no active run besides this one; see
    pages/ui/sidebar.sidebar_runs). Otherwise the view reruns every LIVE_EVERY_S."""
    return all(r.id == run_id for r in job_manager().list() if r.active)


def following(run_id: str, smoothing: float) -> None:
    """The follow timer's fragment runs follow the run; the page's own script run draws the view and
    returns (waiting only for a first point that the learner asked for a moment ago)."""
    ctx = get_script_run_ctx()
    live_view(run_id, smoothing, FOLLOW_MAX_S if ctx and ctx.fragment_ids_this_run else 0.0)


# Every timer of the app lives here: the run view's, the sidebar's and a lesson's experiment.
# Each timed rerun costs the browser a re-render, and two timers on one page are two of them, so the
# sidebar has no timer while the only active run is the one the Train page shows live (that page
# redraws everything when it ends), and a slow one while nothing is active (a run started elsewhere
# appears within SIDEBAR_IDLE_EVERY_S). Figures: docs/speed.md.
SIDEBAR_LIVE_EVERY_S = 2.0
SIDEBAR_IDLE_EVERY_S = 10.0
LESSON_EVERY_S = 1.0  # a lesson's runs: short, and the learner waits for them


def timed(view, every_s: float):
    """`view` as a fragment that Streamlit reruns every `every_s` seconds: the app's one timer."""
    return st.fragment(run_every=every_s)(view)


follow_live = timed(following, FOLLOW_START_S)


timed_live = timed(live_view, LIVE_EVERY_S)


# Start is pressed at the foot of the settings, and the run appears under them, below the fold of a
# laptop screen: the page scrolls its heading to the top once, as soon as it is drawn. The section
# is at least a screen tall, so that there is room to scroll it up before its charts arrive.
RUN_VIEW_CSS = "<style>.st-key-run_view { min-height: calc(100vh - 6rem); }</style>"


SHOW_RUN_JS = """<script>
(() => {
  const until = Date.now() + 5000;
  const show = () => {
    const heading = document.querySelector(".st-key-run_view h3");
    if (heading) heading.scrollIntoView({block: "start"});
    else if (Date.now() < until) setTimeout(show, 50);
  };
  show();
})();
</script>"""


def run_view(run_id: str, show: bool = False) -> None:
    """The run's whole view: its heading and controls, then the live part, followed in place when it
    can be; `show` scrolls its heading to the top once (a run just started)."""
    if show:
        st.html(SHOW_RUN_JS, unsafe_allow_javascript=True)
    st.html(RUN_VIEW_CSS)
    with st.container(key="run_view"):
        try:
            run = job_manager().get(run_id)
        except RunError as exc:
            st.warning(str(exc))
            return
        smoothing = run_head(run)
        if not run.active:
            live_view(run_id, smoothing)
        elif follows_in_place(run_id):
            follow_live(run_id, smoothing)
        else:
            timed_live(run_id, smoothing)
