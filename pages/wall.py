"""Class wall: every learner's completed runs on one board; the teacher sets the class's rules here."""

import pandas as pd
import streamlit as st

from mnist_core.jobs.classroom import BOUNDABLE, FIXABLE, ClassPolicy, wall_rows
from mnist_core.jobs.store import RunError
from mnist_core.learn.config import ConfigError
from mnist_core.words import count, plain_markdown
from pages.ui.resources import job_manager
from pages.ui.shell import ensure_app_shell
from pages.ui.signin import current_user

ensure_app_shell()
jobs = job_manager()
user = current_user()
policy = jobs.policy()
st.title("Class wall")
st.caption("Every completed run of the class, best validation accuracy first. Click a column header to sort.")

exercises = sorted({r["exercise"] for r in wall_rows(jobs.store)} - {""})
choices = ["all runs"] + exercises
default = choices.index(policy.exercise) if policy.exercise in choices else 0
shown = st.selectbox("Exercise", choices, index=default, key="wall_exercise")
rows = wall_rows(jobs.store, None if shown == "all runs" else shown)
if not rows:
    st.info("No completed runs yet" + ("" if shown == "all runs" else f" for the exercise {shown}") + ".")
else:
    st.dataframe(
        pd.DataFrame(rows).drop(columns=["finished"]),
        hide_index=True,
        width="stretch",
        key="wall_table",
        column_config={
            "best_val_acc": st.column_config.NumberColumn("best val acc", format="percent"),
            "test_acc": st.column_config.NumberColumn("test acc", format="percent"),
            "lr": st.column_config.NumberColumn("lr", format="%g"),
            "training_images": st.column_config.NumberColumn("training images", help="empty: all of them"),
        },
    )
    best = rows[0]
    st.success(
        f"Best so far: **{plain_markdown(best['name'])}** with {best['model']} at "
        f"{best['best_val_acc']:.2%} validation accuracy."
        if best["best_val_acc"] is not None
        else "Runs without validation have no score.",
        icon=":material/emoji_events:",
    )

if user.is_teacher:
    st.subheader("The class's rules")
    st.caption("Limits bind learners on every page and in the job API; teachers are not bound.")
    with st.form("class_rules"):
        c1, c2 = st.columns(2)
        max_queued = c1.number_input("Runs a learner may have queued or training (0 = no limit)", 0, 100,
                                     policy.max_queued)  # fmt: skip
        max_images = c2.number_input("Images per run, epochs x training images (0 = no limit)", 0, 10**9,
                                     policy.max_run_images, step=10_000)  # fmt: skip
        exercise = st.text_input(
            "Current exercise (runs record it; empty = none)", policy.exercise, max_chars=60
        )
        cols = st.columns(len(BOUNDABLE))
        at_most = {
            key: int(cols[i].number_input(f"At most {key} (0 = free)", 0, 10**7, policy.at_most.get(key, 0)))
            for i, key in enumerate(BOUNDABLE)
        }
        fixed_cols = st.columns(len(FIXABLE))
        fixed = {
            key: fixed_cols[i].text_input(f"Fix {key} (empty = free)", policy.fixed.get(key, ""))
            for i, key in enumerate(FIXABLE)
        }
        if st.form_submit_button("Save the rules", type="primary"):
            try:
                new = ClassPolicy.from_dict(
                    dict(
                        max_queued=int(max_queued),
                        max_run_images=int(max_images),
                        exercise=exercise.strip(),
                        at_most={k: v for k, v in at_most.items() if v},
                        fixed={k: v.strip() for k, v in fixed.items() if v.strip()},
                    )
                )
                jobs.set_policy(new, actor=user)
                st.success("Saved: learners' next runs follow these rules.", icon=":material/check:")
            except (ConfigError, RunError) as exc:
                st.error(str(exc))
elif policy.rules() or policy.max_queued or policy.max_run_images:
    st.caption(
        "Your class's rules: "
        + "; ".join(
            policy.rules()
            + ([f"at most {count(policy.max_queued, 'run')} queued or training"] if policy.max_queued else [])
            + ([f"at most {policy.max_run_images:,} images per run"] if policy.max_run_images else [])
        )
        + "."
    )
