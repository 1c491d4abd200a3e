"""Runs: every experiment in one table; overlay several to see overfitting and what one change did."""

import pandas as pd
import streamlit as st

from mnist_core.analysis.compare import change_summary, comparison_rows, config_diff, to_csv
from mnist_core.figures.compare import gap_figure, runs_batch_figure, runs_epoch_figure
from mnist_core.jobs import disk
from mnist_core.jobs.classroom import display_name, runs_to_queue
from mnist_core.jobs.store import RunError
from mnist_core.learn.config import ConfigError, field_help
from mnist_core.words import count
from pages.ui.charts import show_chart
from pages.ui.convergence import convergence_view
from pages.ui.resources import can_control, job_manager
from pages.ui.shell import ensure_app_shell
from pages.ui.signin import current_user

ensure_app_shell()
jobs = job_manager()
user = current_user()
st.title("Runs")
runs = jobs.list()
if not runs:
    st.info("No runs yet. Start one on the Train page, or queue the comparison models below.")


def row(run) -> dict:
    c = run.config
    aug = "+".join(k for k in ("rotate", "translate", "scale", "erase") if c.get(k)) or "none"
    return dict(
        id=run.id,
        owner=display_name(run),
        model=run.model,
        status=run.status,
        optimizer=c["optimizer"],
        lr=c["lr"],
        batch=c["batch_size"],
        weight_decay=c["weight_decay"],
        dropout=c.get("model_args", {}).get("dropout", ""),
        augmentation=aug,
        epochs=run.epochs_done,
        best_val_acc=run.best_val_acc,
        test_acc=run.test_acc,
        seconds=round(run.train_seconds),
        images_per_s=round(run.images_per_s) if run.images_per_s else None,
        seed=c["seed"],
        # where it trained: this machine, or a cluster node (its address for teachers only)
        node=(run.node or "") if user.is_teacher else ("a Ray cluster node" if run.node else ""),
        precision=(run.precision or c.get("precision", "")).split(" · ")[0],
    )


by_id = {r.id: r for r in runs}
if runs:
    f1, f2 = st.columns(2)
    models = f1.multiselect("Model", sorted({r.model for r in runs}), key="runs_models", placeholder="all")
    statuses = f2.multiselect(
        "Status", sorted({r.status for r in runs}), key="runs_status", placeholder="all"
    )
    shown = [r for r in runs if (not models or r.model in models) and (not statuses or r.status in statuses)]
    table = pd.DataFrame([row(r) for r in shown])
    st.caption("Click a column header to sort.")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="runs_table",
        column_config={
            "best_val_acc": st.column_config.NumberColumn("best val acc", format="percent"),
            "test_acc": st.column_config.NumberColumn("test acc", format="percent"),
            "lr": st.column_config.NumberColumn("lr", format="%g"),
        },
    )
    if "runs_prefill" in st.session_state:  # a lesson's next step opens its runs, selected
        st.session_state.runs_selected = [r for r in st.session_state.pop("runs_prefill") if r in by_id]
    selected = st.multiselect(
        "Select runs to compare",
        [r.id for r in shown],
        key="runs_selected",
        # no status in the label: a label that changes when a run ends would reset the selection
        format_func=lambda rid: f"{by_id[rid].model} {rid[-6:]} · {display_name(by_id[rid])}",
    )
    st.download_button(
        "Export the table as CSV",
        to_csv([row(r) for r in shown]),
        "runs.csv",
        "text/csv",
        icon=":material/download:",
    )
else:
    selected = []

unfinished = [r for r in runs if r.status in ("failed", "interrupted") and r.reason]
if unfinished:
    with st.expander(
        f"Why {count(len(unfinished), 'run')} did not finish", expanded=True, icon=":material/error:"
    ):
        for r in unfinished[:5]:  # newest first
            st.error(f"**{r.model} `{r.id}`** ({r.status}): {r.reason}")


def disk_panel() -> None:
    """The store's size and the free space, and a prune action that says what it freed: a
    teacher's prunes every run, a learner's only their own (disk.prune keeps to the same rule)."""
    c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    whose = "finished runs" if user.is_teacher else "your finished runs"
    if (user.is_teacher or any(can_control(r, user) for r in runs)) and c3.button(
        f"Prune epoch files of {whose}",
        icon=":material/delete_sweep:",
        help="Keeps each run's best and last epoch (Evaluate, Draw, Inside and Extend use them); "
        "the curves and records of every epoch stay."
        + ("" if user.is_teacher else " Classmates' runs are theirs to prune."),
    ):
        report = disk.prune(jobs.store, actor=user)
        c3.success(
            f"Removed {count(report.files, 'epoch file')} of {count(report.runs, 'run')} and freed "
            f"{report.freed_bytes / disk.MB:,.1f} MB.",
            icon=":material/check:",
        )
    now = disk.usage(jobs.store)  # after a prune, so the figures show what it freed
    c1.metric("Run store on disk", f"{now['store_bytes'] / disk.MB:,.1f} MB")
    c2.metric("Free on its disk", f"{now['free_bytes'] / disk.MB:,.0f} MB")


disk_panel()

# ---------------- comparing selected runs ----------------
if selected:
    st.subheader(f"Comparing {count(len(selected), 'run')}")
    names = {rid: f"{by_id[rid].model} {rid[-6:]}" for rid in selected}
    epochs = {names[rid]: jobs.store.epochs(rid) for rid in selected}
    view = st.segmented_control("Curves", ["per epoch", "per batch"], default="per epoch", key="runs_view")
    if view == "per batch":
        series = {}
        for rid in selected:
            rows = jobs.store.batch_losses(rid)
            done = max(1, by_id[rid].epochs_done)
            per_epoch = by_id[rid].progress.get("batches") or max(1, len(rows) // done)
            series[names[rid]] = ([r[0] for r in rows], [r[2] for r in rows], per_epoch)
        show_chart(runs_batch_figure(series), key="runs_batches")
    else:
        show_chart(runs_epoch_figure(epochs), key="runs_epochs")
    show_chart(gap_figure(epochs), key="runs_gap")
    finished = [rid for rid in selected if not by_id[rid].active]
    if finished:  # one finished run's epochs overlaid: has it converged?
        st.markdown("**Each epoch's batch losses, overlaid**")
        run_col, smooth_col = st.columns(2)
        shown_id = run_col.selectbox(
            "Epochs of run", finished, key="runs_convergence_run", format_func=names.get
        )
        smoothing = smooth_col.slider(
            "Smoothing",
            0.0,
            0.99,
            0.6,
            0.01,
            key="runs_smoothing",
            help="exponential moving average of the batch losses",
        )
        convergence_view(shown_id, jobs.store.epochs(shown_id), smoothing)
    diff = config_diff({names[rid]: by_id[rid].config for rid in selected})
    if len(selected) > 1:
        st.markdown("**What differs between them**")
        if diff:
            st.dataframe(pd.DataFrame(diff).T.astype(str), width="stretch")
        else:
            st.caption("Same settings: only chance (or nothing) separates these runs.")
    if len(selected) == 2 and all(by_id[r].status == "completed" for r in selected):
        a, b = sorted((by_id[r] for r in selected), key=lambda r: r.created)  # the older run is the base
        st.info(change_summary(a, b, jobs.store.epochs(a.id), jobs.store.epochs(b.id)))

    first = by_id[selected[0]]
    st.download_button(
        f"Export the metrics of {names[first.id]} as CSV",
        to_csv(jobs.store.epochs(first.id)),
        f"{first.id}-epochs.csv",
        "text/csv",
        icon=":material/download:",
    )

    # ---------------- change one thing ----------------
    with st.expander(f"Change one thing: clone {names[first.id]} with one setting changed (same seed)"):
        helps = field_help()
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        knob = c1.selectbox(
            "Setting",
            [
                "weight_decay",
                "lr",
                "batch_size",
                "epochs",
                "label_smoothing",
                "rotate",
                "translate",
                "scale",
                "erase",
                "optimizer",
                "schedule",
            ],
            key="change_knob",
            help="the one setting the new run changes",
        )
        current = first.config[knob]
        raw = c2.text_input(f"New value (now {current})", key="change_value", help=helps[knob])
        if c3.button("Start the clone", type="primary", disabled=not raw):
            try:
                value = type(current)(raw) if not isinstance(current, str) else raw
                clone = jobs.clone(first.id, actor=user, **{knob: value})
                st.success(f"Started {clone.id}: select both runs when it ends to see what changed.")
            except (ValueError, ConfigError) as exc:  # RunError (not allowed, a limit) is a ValueError
                st.error(str(exc))

    # ---------------- stop (a teacher stops any learner's run here) ----------------
    theirs = [rid for rid in selected if not can_control(by_id[rid], user)]
    active = [rid for rid in selected if by_id[rid].active and rid not in theirs]
    if active and st.button(f"Stop {count(len(active), 'selected active run')}", icon=":material/stop:"):
        for rid in active:
            jobs.stop(rid, actor=user)
        st.rerun()

    # ---------------- delete ----------------
    with st.expander(f"Delete {count(len(selected), 'selected run')}"):
        if theirs:
            st.caption(
                f"{len(theirs)} of them belong to other learners: you can compare them, not delete them."
            )
        sure = st.checkbox("Yes, delete their records and checkpoint files", key="delete_sure")
        if st.button("Delete", disabled=not sure or bool(theirs), icon=":material/delete:"):
            for rid in selected:
                jobs.delete(rid, actor=user)
            st.rerun()

# ---------------- the reference comparison table ----------------
st.subheader("Model comparison")
st.caption("The classic table, filled from your completed full-data runs (best test accuracy of each).")
rows = comparison_rows(runs)
st.dataframe(
    pd.DataFrame(
        [
            dict(
                model=r["model"],
                registry_key=r["registry_key"],
                test_accuracy="—" if r["test_accuracy"] is None else f"{r['test_accuracy']:.2%}",
                run=r["run"] or "not run yet",
            )
            for r in rows
        ]
    ),
    hide_index=True,
    width="stretch",
    column_config={
        "registry_key": st.column_config.TextColumn("registry key"),
        "test_accuracy": st.column_config.TextColumn("test accuracy"),
        "run": st.column_config.TextColumn("best run"),
    },
)
# not those already queued or training, nor beyond the class's queue limit (the note says so)
missing, waits = runs_to_queue(jobs.policy(), user, [r["config"] for r in rows if r["test_accuracy"] is None],
                               jobs.store.list(("queued", "running")))  # fmt: skip
if waits:
    st.caption(waits)
if missing and st.button(
    f"Queue the {count(len(missing), 'missing run')} with their reference settings",
    icon=":material/playlist_add:",
):
    try:
        for config in missing:
            jobs.submit(config, actor=user)
    except (disk.DiskBudgetError, RunError) as exc:
        st.error(str(exc), icon=":material/hard_drive:")
    else:
        st.rerun()
