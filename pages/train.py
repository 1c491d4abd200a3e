"""Train: pick a model and its hyperparameters, start a background run, watch it live."""

import time

import pandas as pd
import streamlit as st
import torch

from mnist_core.data.augment import augment_batch
from mnist_core.data.pixels import normalize
from mnist_core.figures.pictures import digit_sheet
from mnist_core.figures.training import lr_schedule_figure
from mnist_core.jobs.disk import DiskBudgetError
from mnist_core.jobs.store import RunError
from mnist_core.learn.config import OPTIMIZERS, SCHEDULES, ConfigError, TrainConfig, field_help, settings
from mnist_core.learn.engine import lr_schedule
from mnist_core.learn.models import REGISTRY, summary
from pages.ui.charts import show_chart
from pages.ui.live import run_view
from pages.ui.resources import job_manager, mnist_or_stop, my_runs
from pages.ui.shell import ensure_app_shell
from pages.ui.signin import current_user

ensure_app_shell()
HELP = field_help()
LRS = [1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2, 5e-2, 0.1, 0.2, 0.3, 0.5, 1.0]
DECAYS = [0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
BATCHES = [16, 32, 50, 64, 100, 128, 256, 512, 1024]
FIELDS = settings("optimisation", "regularisation", "run", "augmentation")  # what the widgets below set
AUG = {
    "rotate": ("Rotation", 30.0, 10.0, "degrees"),
    "translate": ("Shift", 0.3, 0.1, "of the side"),
    "scale": ("Zoom", 0.3, 0.1, "in or out"),
    "erase": ("Random erasing", 1.0, 0.3, "probability"),
}
jobs = job_manager()


def schedule_words(cfg: TrainConfig) -> str:
    return {
        "constant": "constant.",
        "step": f"multiplied by {cfg.gamma:g} every {cfg.step_size} epochs.",
        "cosine": "a cosine from the chosen rate down to zero.",
        "onecycle": "warms up for a quarter of the run, then anneals to almost zero (one cycle).",
        "range": "rising exponentially to the chosen rate, an LR range test (from Lessons).",
    }[cfg.schedule]


def chosen_augmentation() -> dict[str, float]:
    """Each transform's strength as the widgets set it (0: switched off)."""
    return {n: (st.session_state[f"aug_{n}"] if st.session_state[f"aug_on_{n}"] else 0.0) for n in AUG}


def chosen_config(user, policy) -> tuple[TrainConfig | None, str | None]:
    """The run the widgets describe, or None and why not (an invalid combination, or one this
    class does not allow)."""
    values = {name: st.session_state[f"cfg_{name}"] for name in FIELDS}
    values.update(
        chosen_augmentation(),
        model=st.session_state.cfg_model,
        model_args={"dropout": st.session_state.cfg_dropout, "batchnorm": st.session_state.cfg_batchnorm},
    )
    try:
        config = TrainConfig.from_dict(values)
    except ConfigError as exc:
        return None, str(exc)
    if not user.is_teacher and policy.problems(config):
        return None, "Not allowed in this class: " + "; ".join(policy.problems(config)) + "."
    return config, None


def start_run() -> None:
    """Start training's callback. It runs before the next script run, so everything that run draws
    already knows the new run: the sidebar above the page (which names it "shown live on this page"
    instead of "None" until its next redraw) and the live view, which waits for its first point."""
    user = current_user()
    config, problem = chosen_config(user, jobs.policy())
    if config is None:
        st.session_state.train_refused = problem
        return
    try:
        run = jobs.submit(config, actor=user)
    except (DiskBudgetError, RunError) as exc:
        st.session_state.train_refused = str(exc)
        return
    st.session_state.train_run_id = run.id
    st.session_state.train_started_id, st.session_state.train_started_at = run.id, time.time()
    st.session_state.train_show_run = True  # the live view is below the settings: bring it up
    st.session_state.train_toast = f"Run {run.id} " + (
        "started" if run.status == "running" else f"queued at position {run.queue_position}"
    )


def apply_preset() -> None:
    """Widget state <- the selected model's reference settings (TrainConfig defaults elsewhere)."""
    key = st.session_state.cfg_model
    cfg = TrainConfig.for_model(key)
    for name in FIELDS:
        st.session_state[f"cfg_{name}"] = getattr(cfg, name)
    args = REGISTRY[key].args
    st.session_state.cfg_dropout = float(args.get("dropout", 0.0))
    st.session_state.cfg_batchnorm = bool(args.get("batchnorm", False))
    for name, (_, _, default, _) in AUG.items():
        st.session_state[f"aug_on_{name}"] = getattr(cfg, name) > 0
        st.session_state[f"aug_{name}"] = getattr(cfg, name) or default


def nearest(value, options):
    return min(options, key=lambda o: abs(o - value))


def load_config(values: dict) -> None:
    """Widget state <- a whole config (a lesson's next step opens Train set up with its run's settings).
    Values between the sliders' steps snap to the nearest step; architecture arguments the page has
    no widget for (hidden sizes, channels) come from the registry entry."""
    cfg = TrainConfig.from_dict(values)
    st.session_state.cfg_model = cfg.model
    apply_preset()
    for name in FIELDS:
        st.session_state[f"cfg_{name}"] = getattr(cfg, name)
    st.session_state.cfg_lr = nearest(cfg.lr, LRS)
    st.session_state.cfg_weight_decay = nearest(cfg.weight_decay, DECAYS)
    st.session_state.cfg_batch_size = nearest(cfg.batch_size, BATCHES)
    st.session_state.cfg_epochs = min(cfg.epochs, 30)
    args = {**REGISTRY[cfg.model].args, **cfg.model_args}
    st.session_state.cfg_dropout = float(args.get("dropout", 0.0))
    st.session_state.cfg_batchnorm = bool(args.get("batchnorm", False))
    for name, (_, _, default, _) in AUG.items():
        st.session_state[f"aug_on_{name}"] = getattr(cfg, name) > 0
        st.session_state[f"aug_{name}"] = getattr(cfg, name) or default


if "cfg_model" not in st.session_state:
    st.session_state.cfg_model = "fast_cnn"
    apply_preset()
prefill_problem = None
prefilled = "train_prefill" in st.session_state  # sent by the Lessons page's next step
if prefilled:
    try:
        load_config(st.session_state.pop("train_prefill"))
    except ConfigError as exc:
        prefill_problem = f"The settings sent here could not be loaded: {exc}"
user = current_user()
policy = jobs.policy()
locked = {} if user.is_teacher else policy.fixed  # settings the exercise fixes: shown, not changeable
for name, value in locked.items():
    if st.session_state.get(f"cfg_{name}") != value:
        st.session_state[f"cfg_{name}"] = value
        if name == "model":
            apply_preset()

st.title("Train")
if prefill_problem:
    st.warning(prefill_problem)
elif prefilled:
    st.info("Set up by your lesson: check the settings, then start.", icon=":material/school:")

# ---------------- model ----------------
left, right = st.columns([2, 3])
with left:
    st.selectbox(
        "Architecture",
        list(REGISTRY),
        key="cfg_model",
        disabled="model" in locked,
        on_change=apply_preset,
        format_func=lambda k: f"{k} · {REGISTRY[k].reference}",
        help="Choosing a model loads its reference settings.",
    )
    spec = REGISTRY[st.session_state.cfg_model]
    st.write(spec.description)
    shape = summary(
        spec.key, {"dropout": st.session_state.cfg_dropout, "batchnorm": st.session_state.cfg_batchnorm}
    )
    table = pd.DataFrame(list(shape.layers))
    p1, p2 = st.columns(2)
    p1.metric("Parameters", f"{shape.parameters:,}")
    p2.metric("Forward FLOPs / image", f"{shape.flops / 1e6:.2f} M")
    st.button("Reset to reference settings", on_click=apply_preset, icon=":material/restart_alt:")
with right:
    table["output_shape"] = table["output_shape"].map(lambda s: " x ".join(map(str, s)))
    st.dataframe(
        table[["layer", "type", "output_shape", "params", "flops"]],
        hide_index=True,
        height=260,
        width="stretch",
        column_config={
            "params": st.column_config.NumberColumn("params", format="localized"),
            "flops": st.column_config.NumberColumn("FLOPs", format="localized"),
        },
    )

# ---------------- hyperparameters ----------------
st.subheader("Hyperparameters")
opt_col, reg_col, run_col = st.columns(3)
with opt_col:
    st.markdown("**Optimisation**")
    st.selectbox(
        "Optimizer", OPTIMIZERS, key="cfg_optimizer", help=HELP["optimizer"], disabled="optimizer" in locked
    )
    st.select_slider("Learning rate", LRS, key="cfg_lr", format_func=lambda v: f"{v:g}", help=HELP["lr"])
    st.slider("Momentum (SGD)", 0.0, 0.99, key="cfg_momentum", step=0.01, help=HELP["momentum"])
    st.checkbox("Nesterov momentum", key="cfg_nesterov", help=HELP["nesterov"])
    st.selectbox(
        "Schedule",
        [s for s in SCHEDULES if s != "range" or st.session_state.cfg_schedule == "range"],  # range: Lessons
        key="cfg_schedule",
        help=HELP["schedule"],
        disabled="schedule" in locked,
    )
    schedule_box = st.empty()  # the learning rate batch by batch, once the settings make a config
with reg_col:
    st.markdown("**Regularisation**")
    st.select_slider(
        "Weight decay (L2)",
        DECAYS,
        key="cfg_weight_decay",
        format_func=lambda v: f"{v:g}",
        help=HELP["weight_decay"],
    )
    st.slider(
        "Dropout",
        0.0,
        0.7,
        key="cfg_dropout",
        step=0.05,
        help="share of activations zeroed during training, before the last layer",
    )
    st.toggle("BatchNorm", key="cfg_batchnorm", help="normalise activations per batch; trains faster")
    st.slider("Label smoothing", 0.0, 0.3, key="cfg_label_smoothing", step=0.05, help=HELP["label_smoothing"])
    st.slider("Early-stopping patience", 0, 10, key="cfg_patience", help=HELP["patience"])
with run_col:
    st.markdown("**Run**")
    st.select_slider("Batch size", BATCHES, key="cfg_batch_size", help=HELP["batch_size"])
    st.slider("Epochs", 1, 30, key="cfg_epochs", help=HELP["epochs"])
    st.slider("Validation fraction", 0.0, 0.5, key="cfg_val_fraction", step=0.05, help=HELP["val_fraction"])
    st.number_input("Seed", 0, 2**31 - 1, key="cfg_seed", help=HELP["seed"])
    st.number_input("Training images (0 = all)", 0, 60000, key="cfg_limit", step=1000, help=HELP["limit"])

with st.expander(
    "Augmentation (training split only)", expanded=any(st.session_state[f"aug_on_{n}"] for n in AUG)
):
    aug_cols = st.columns(4)
    for col, (name, (label, hi, _, unit)) in zip(aug_cols, AUG.items()):
        with col:
            st.toggle(label, key=f"aug_on_{name}", help=HELP[name])
            st.slider(
                f"{label} strength ({unit})",
                0.0,
                hi,
                key=f"aug_{name}",
                disabled=not st.session_state[f"aug_on_{name}"],
            )
    aug = chosen_augmentation()
    if any(aug.values()):
        digits = normalize(mnist_or_stop().train_images[:16])
        shown = augment_batch(
            digits, generator=torch.Generator().manual_seed(st.session_state.cfg_seed), **aug
        )
        st.image(
            digit_sheet(shown, cols=16),
            width="stretch",
            output_format="PNG",
            alt="16 training digits with the chosen augmentation applied",
        )
        st.caption("The same 16 training digits as the network would see them in one batch.")
    else:
        st.caption("Switch a transform on to preview it on real training digits.")

# ---------------- validation and start ----------------
if policy.rules() and not user.is_teacher:
    name = f"Exercise **{policy.exercise}**" if policy.exercise else "Your class"
    st.info(f"{name}: {'; '.join(policy.rules())} (set by your teacher).", icon=":material/lock:")
config, problem = chosen_config(user, policy)
if problem:
    st.error(problem, icon=":material/error:")
if config is not None:
    with schedule_box.container(key="lr_schedule"):
        show_chart(
            lr_schedule_figure(*lr_schedule(config), config.schedule),
            finding=f"The learning rate over the {config.epochs} epochs: {schedule_words(config)}",
            config={"displayModeBar": False},
        )
st.button(
    "Start training",
    type="primary",
    disabled=config is None,
    icon=":material/play_arrow:",
    on_click=start_run,
)
if refused := st.session_state.pop("train_refused", None):  # refused before it starts: disk, class limit
    st.error(refused, icon=":material/block:")
if started := st.session_state.pop("train_toast", None):
    st.toast(started)

# ---------------- live section ----------------
if "train_run_id" not in st.session_state:  # reattach: the training run, else a queued one, else the latest
    runs = my_runs(jobs.list(), current_user())
    if runs:
        st.session_state.train_run_id = min(
            runs, key=lambda r: ("running", "queued").index(r.status) if r.active else 2
        ).id


if "train_run_id" in st.session_state:
    st.divider()
    run_view(st.session_state.train_run_id, show=st.session_state.pop("train_show_run", False))
