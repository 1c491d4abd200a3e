"""Inside the network: activations layer by layer, filters over epochs, dataset examples, embedding maps."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.pixels import IMAGE_SIZE, denormalize, normalize
from ..learn.checkpoints import load_checkpoint
from ..learn.evaluate import one_thread
from ..learn.models import memory_format
from .memory import memo, test_images

MAX_SAMPLE = 10_000  # the test set: the embedding map never asks for more
# digits x maps of one set of maps (a run's epochs share them): the forward passes of one test set
# for PCA; t-SNE fits cost seconds per thousand digits
MAP_DIGITS = {"pca": MAX_SAMPLE, "tsne": 2_000}
MIN_MAP_DIGITS = 100
STARTS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)
FOLLOWS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.Dropout)  # elementwise: drawn with the layer before
_LOCK = threading.Lock()  # hooks live on a model that other sessions share: one capture at a time


@dataclass
class Stage:
    """One step of the forward pass as the viewer draws it: a layer plus the elementwise layers after it.

    kind: 'input', 'maps' (C, H, W), 'vector' (D,), 'output' (10 probabilities) or 'other' (a layer
    type the viewer does not know: only its shape is shown). value: the activation of one image."""

    name: str  # module name of the stage's last layer (whose output `value` is)
    first: str  # module name of its first layer (the conv whose filters made the maps)
    title: str
    kind: str
    layers: list[str]
    value: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def shape_text(self) -> str:
        return " x ".join(map(str, self.shape))


def to_input(image28: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A 28x28 [0, 1] image -> a normalised (1, 1, 28, 28) tensor."""
    return normalize(np.asarray(image28, dtype=np.float32).reshape(IMAGE_SIZE, IMAGE_SIZE))


def to_image(x: torch.Tensor) -> np.ndarray:
    """A normalised (1, 28, 28) or (28, 28) tensor -> a 28x28 [0, 1] image."""
    return denormalize(x.reshape(IMAGE_SIZE, IMAGE_SIZE).float()).numpy()


def test_inputs(mnist) -> torch.Tensor:
    """The normalised test images (10,000 x 1 x 28 x 28), made once per dataset (memory.test_images)."""
    return test_images(mnist)


def _layout_of(model: nn.Module) -> torch.memory_format:
    """The model in the memory format models.memory_format picks for it (channels_last for conv nets)."""
    fmt = memory_format(model)
    model.to(memory_format=fmt)
    return fmt


def leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if not list(m.children())]


@torch.inference_mode()
def capture(model: nn.Module, x: torch.Tensor, names: set[str] | None = None, reduce=None) -> list:
    """Run `x` through the model with a forward hook on every leaf layer (or those in `names`).

    Returns [(name, module, output)] in execution order plus the logits as a last ('', None, logits)
    entry; `reduce` maps each output before it is kept (to save memory on a whole dataset)."""
    me, seen = threading.get_ident(), []

    def hook(module, inputs, output, name):
        if threading.get_ident() == me:  # another session's forward pass is not ours to record
            seen.append((name, module, reduce(output) if reduce else output.detach().clone()))

    was_training = model.training
    with _LOCK:
        handles = [
            m.register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n))
            for n, m in leaves(model)
            if names is None or n in names
        ]
        try:
            model.eval()
            param = next(model.parameters())
            fmt = _layout_of(model) if len(x) > 1 else torch.contiguous_format
            logits = model(x.to(param.device, param.dtype).contiguous(memory_format=fmt)).float().cpu()
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
    return seen + [("", None, logits)]


def _title(kind_of: str, n: int, types: list[str]) -> str:
    return f"{kind_of} {n}: " + " → ".join(types) if n else f"{kind_of}: " + " → ".join(types)


def stage_plan(model: nn.Module) -> list[tuple[str, str, list[str], str]]:
    """(first, last, layer types, title) of every stage, from the model's leaf layers alone."""
    plan: list[list] = []
    counts: dict[str, int] = {}
    for name, m in leaves(model):
        if isinstance(m, FOLLOWS) and plan and plan[-1][4] != "other":
            plan[-1][1] = name
            plan[-1][2].append(type(m).__name__)
            continue
        group = (
            "conv"
            if isinstance(m, nn.Conv2d)
            else "pool"
            if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d))
            else "flatten"
            if isinstance(m, nn.Flatten)
            else "linear"
            if isinstance(m, nn.Linear)
            else "other"
        )
        counts[group] = counts.get(group, 0) + 1
        plan.append([name, name, [type(m).__name__], counts[group], group])
    out = []
    for i, (first, last, types, n, group) in enumerate(plan):
        if group == "linear":
            label = "output" if i == len(plan) - 1 else "hidden"
            out.append((first, last, types, _title(label, 0 if label == "output" else n, types)))
        else:
            out.append((first, last, types, _title(group, 0 if group == "flatten" else n, types)))
    return out


def activations(model: nn.Module, image28: np.ndarray | torch.Tensor) -> list[Stage]:
    """The whole forward pass of one image, stage by stage: input, feature maps, ..., probabilities.

    `image28` is a 28x28 [0, 1] image or an already normalised (1, 1, 28, 28) tensor."""
    x = image28 if isinstance(image28, torch.Tensor) and image28.dim() == 4 else to_input(image28)
    plan = stage_plan(model)
    outputs = {name: out[0].float().cpu().numpy() for name, _, out in capture(model, x)[:-1]}
    modules = dict(model.named_modules())
    stages = [Stage("input", "input", "input: 1 x 28 x 28", "input", [], to_image(x[0]).reshape(1, 28, 28))]
    for i, (first, last, types, title) in enumerate(plan):
        value = outputs[last]
        known = isinstance(modules[first], STARTS)
        if not known:
            kind = "other"
        elif i == len(plan) - 1 and value.ndim == 1:
            kind, value = "output", torch.softmax(torch.as_tensor(value), 0).numpy()
            title += " → softmax"
        else:
            kind = {3: "maps", 1: "vector"}.get(value.ndim, "other")
        stages.append(Stage(last, first, title, kind, types, value))
    return stages


def prediction(stages: list[Stage]) -> tuple[int, float]:
    probs = stages[-1].value
    return int(np.argmax(probs)), float(np.max(probs))


def map_stats(fmap: np.ndarray) -> dict:
    """Summary figures of one feature map."""
    fmap = np.asarray(fmap, dtype=np.float64)
    r, c = np.unravel_index(int(np.argmax(fmap)), fmap.shape)
    return dict(
        min=float(fmap.min()),
        max=float(fmap.max()),
        mean=float(fmap.mean()),
        std=float(fmap.std()),
        active=float((fmap > 0).mean()),
        peak_row=int(r),
        peak_col=int(c),
    )


def first_weight(model_or_state) -> tuple[str, np.ndarray]:
    """('conv'|'linear', images) of the first layer: conv filters (C, k, k) or Linear rows as 28x28."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    name, w = next((k, v) for k, v in state.items() if k.endswith("weight") and v.dim() in (2, 4))
    w = w.detach().float().cpu()
    if w.dim() == 4:
        return "conv", w.mean(1).numpy() if w.shape[1] > 1 else w[:, 0].numpy()
    return "linear", w.reshape(w.shape[0], IMAGE_SIZE, IMAGE_SIZE).numpy()


def filter_of(model: nn.Module, stage: Stage, channel: int) -> np.ndarray | None:
    """The weights that made one channel of a conv stage: (in channels, k, k); None for other stages."""
    module = dict(model.named_modules()).get(stage.first)
    if isinstance(module, nn.Conv2d):
        return module.weight[channel].detach().float().cpu().numpy()
    return None


# ---------------- dataset examples: which test digits excite a channel most ----------------
def example_stages(model: nn.Module) -> list[str]:
    """Names of the stages that get dataset examples: feature maps and hidden units."""
    return [
        last
        for first, last, types, title in stage_plan(model)
        if types[0] in ("Conv2d", "MaxPool2d", "AvgPool2d") or title.startswith("hidden")
    ]


def channel_scores(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Per stage, (N, channels) scores: the strongest response of each channel (max over positions)."""
    names = set(example_stages(model))

    def peak(out: torch.Tensor) -> torch.Tensor:
        return out.detach().float().amax(dim=(2, 3)).cpu() if out.dim() == 4 else out.detach().float().cpu()

    parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for start in range(0, len(x), batch_size):
        for name, _, score in capture(model, x[start : start + batch_size], names, reduce=peak)[:-1]:
            parts[name].append(score)
    return {n: torch.cat(p) for n, p in parts.items() if p}


def top_examples(model: nn.Module, x: torch.Tensor, k: int = 9) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per stage: (indices, scores), each (channels, k), of the k inputs that excite each channel most."""
    out = {}
    for name, scores in channel_scores(model, x).items():
        top = scores.topk(min(k, len(scores)), dim=0)
        out[name] = (top.indices.T.numpy(), top.values.T.numpy())
    return out


def file_key(path: str | Path) -> tuple[str, int, int]:
    """(path, modification time, size): what names one version of a checkpoint file in a cache key."""
    path = Path(path)
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def dataset_examples(path: str | Path, model: nn.Module, x_test: torch.Tensor, k: int = 9) -> dict:
    """top_examples on the test set, computed once per checkpoint version and kept in memory."""
    key = ("inside-examples", file_key(path), len(x_test), k)
    return memo(key, lambda: top_examples(model, x_test, k))


# ---------------- filters over time ----------------
def weight_movement(states: list[dict]) -> dict[str, list[float]]:
    """Per conv/linear weight, ||W_e - W_(e-1)|| / ||W_(e-1)|| for e = 2..n (one value per later state)."""
    names = [k for k, v in states[0].items() if k.endswith("weight") and v.dim() in (2, 4)]
    out: dict[str, list[float]] = {}
    for name in names:
        kind = "conv" if states[0][name].dim() == 4 else "linear"
        label = f"{name.removesuffix('.weight')} ({kind})"
        out[label] = [
            float((b[name].float() - a[name].float()).norm() / a[name].float().norm().clamp(min=1e-12))
            for a, b in zip(states, states[1:])
        ]
    return out


# ---------------- embedding maps ----------------
def stratified_sample(labels, n: int, seed: int = 0) -> np.ndarray:
    """n indices with the classes as equal as they can be (random within each class), sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx[rng.permutation(len(idx))]] = np.arange(len(idx))
    order = np.lexsort((rng.random(len(labels)), rank))
    return np.sort(order[: min(n, len(labels))])


def map_digits(asked: int, maps: int, method: str, available: int = MAX_SAMPLE) -> tuple[int, str | None]:
    """Digits per map when `maps` maps (a run's shown epochs) share the method's budget
    (MAP_DIGITS), and a message when fewer than asked were allowed."""
    share = max(MIN_MAP_DIGITS, MAP_DIGITS[method] // max(1, maps))
    limit = min(MAX_SAMPLE, available, share)
    if asked <= limit:
        return max(10, int(asked)), None
    name = "t-SNE" if method == "tsne" else "PCA"
    if maps > 1:
        why = f"{maps} maps share {MAP_DIGITS[method]:,} digits, so {name} stays quick"
    else:
        why = "the test set, and what stays quick" if limit == MAX_SAMPLE else f"what {name} does quickly"
    return limit, f"{asked:,} digits asked for; the map is capped at {limit:,} ({why})."


def cap_sample(n: int, available: int = MAX_SAMPLE) -> tuple[int, str | None]:
    """A sample size within [10, min(MAX_SAMPLE, available)], and a message when it had to be capped."""
    limit = min(MAX_SAMPLE, available)
    if n > limit:
        return limit, (
            f"{n:,} digits asked for; the map is capped at {limit:,} (the test set, and what stays quick)."
        )
    return max(10, int(n)), None


@torch.inference_mode()
def penultimate(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(N, D) features that enter the model's last Linear layer."""
    last = [m for _, m in leaves(model) if isinstance(m, nn.Linear)][-1]
    me, parts = threading.get_ident(), []

    def pre_hook(module, inputs):
        if threading.get_ident() == me:
            parts.append(inputs[0].detach().float().reshape(len(inputs[0]), -1).cpu())

    was_training = model.training
    with _LOCK:
        handle = last.register_forward_pre_hook(pre_hook)
        try:
            model.eval()
            param = next(model.parameters())
            fmt = _layout_of(model)
            for start in range(0, len(x), batch_size):
                model(
                    x[start : start + batch_size].to(param.device, param.dtype).contiguous(memory_format=fmt)
                )
        finally:
            handle.remove()
            model.train(was_training)
    return torch.cat(parts).numpy()


@dataclass(frozen=True)
class Projection:
    """A fitted 2-D PCA: subtract the mean, project on the two leading principal axes."""

    mean: np.ndarray  # (D,)
    axes: np.ndarray  # (2, D), unit vectors, largest variance first

    def transform(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, dtype=np.float64) - self.mean) @ self.axes.T).astype(np.float32)


def fit_pca(features: np.ndarray) -> Projection:
    """A 2-D PCA of these features, exact and deterministic: the top two eigenvectors of the
    covariance (float64), each signed so its largest loading is positive (scikit-learn's rule).
    Done in torch, since importing scikit-learn's decomposition alone took longer than the map.
    On one thread: the eigensolver is thousands of tiny parallel steps, and with a run training on
    the other core each step waits for a thread to be woken (2 cores, 784 dimensions: 0.06 s on an
    idle machine, 1-3 s beside a run on two threads, 0.11 s on one)."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float64))
    mean = x.mean(0)
    centred = x - mean
    with one_thread():
        _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    axes = vectors[:, -2:].flip(1).T.clone()
    rows = torch.arange(axes.shape[0])
    axes *= torch.sign(axes[rows, axes.abs().argmax(1)]).unsqueeze(1)
    return Projection(mean.numpy(), axes.numpy())


def tsne(features: np.ndarray, init: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (sklearn); features over 50 dimensions are first reduced to 50 with PCA, as is usual.
    `init` (a previous layout) is rescaled to sklearn's own PCA-init scale so it only sets the start."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32)
    if len(x) == 0 or float(np.ptp(x, axis=0).max(initial=0.0)) == 0.0:
        # every digit has the same features (a diverged run's zeros): one point, the honest map;
        # sklearn's t-SNE divides by their zero spread and crashes the process
        return np.zeros((len(x), 2), dtype=np.float32)
    if x.shape[1] > 50:
        x = PCA(n_components=50, svd_solver="randomized", random_state=seed).fit_transform(x)
    start = "pca"
    if init is not None and float(init[:, 0].std()) > 0:
        start = (init - init.mean(0)) / (init[:, 0].std() + 1e-12) * 1e-4
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return (
        TSNE(n_components=2, init=start, random_state=seed, perplexity=perplexity, learning_rate="auto")
        .fit_transform(x)
        .astype(np.float32)
    )


def knn_separation(xy: np.ndarray, labels, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy in the 2-D map: how well the digits are separated."""
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    points = torch.as_tensor(np.asarray(xy, dtype=np.float32))
    votes = []
    for start in range(0, len(points), 2048):  # bounded memory for the 10,000-digit map
        d = torch.cdist(points[start : start + 2048], points)
        d[torch.arange(len(d)), torch.arange(start, start + len(d))] = float("inf")  # not itself
        votes.append(labels_t[d.topk(k, largest=False).indices])
    counts = torch.nn.functional.one_hot(torch.cat(votes), 10).sum(1)
    return float((counts.argmax(1) == labels_t).float().mean())


def finite_features(features: np.ndarray, limit: float = 1e4) -> np.ndarray:
    """Features a projection can take: a diverged run's NaN or infinite values as 0, and values so
    large that their squares overflow float32 scaled down as a whole (a map's shape is unchanged by
    one scale: PCA is linear, the neighbours of t-SNE stay the neighbours)."""
    f = np.nan_to_num(np.asarray(features, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.abs(f).max()) if f.size else 0.0
    return f * (limit / peak) if peak > limit else f


@dataclass
class EmbeddingMap:
    """A 2-D map of a sample of test digits: features through the model, and the raw pixels."""

    indices: np.ndarray  # test-set indices of the sample
    labels: np.ndarray
    preds: np.ndarray
    xy: np.ndarray  # (N, 2) penultimate features projected
    raw_xy: np.ndarray  # (N, 2) raw pixels through the same method
    separation: float  # 5-NN leave-one-out accuracy in xy
    method: str


def sample_inputs(x_test: torch.Tensor, y_test: torch.Tensor, n: int, seed: int = 0):
    idx = stratified_sample(y_test.numpy(), n, seed)
    return idx, x_test[idx], y_test[idx].numpy()


def raw_layout(raw: np.ndarray, method: str) -> np.ndarray:
    """The 2-D layout of raw pixels (N, 784) by "pca" or "tsne", remembered per set of pixels: the
    maps of every model and epoch lay out the same fixed sample of test digits, so their raw layout
    is the same each time (500 digits by PCA: 0.09 s, which the Train page's panel spent at every
    epoch's end beside the run, for a layout it does not show; t-SNE: seconds). A copy is returned."""
    digest = hashlib.blake2b(np.ascontiguousarray(raw).tobytes(), digest_size=16).digest()

    def layout() -> np.ndarray:
        return (fit_pca(raw).transform(raw) if method == "pca" else tsne(raw)).astype(np.float32)

    return memo(("inside-raw-layout", method, digest), layout).copy()


def embedding_maps(
    models: Sequence[nn.Module | str | Path],
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n: int = 2000,
    method: str = "pca",
    progress=None,
) -> list[EmbeddingMap]:
    """One map per model (the epochs of a run, in order), with axes that can be compared across them.

    A model may be given as its checkpoint's path: each is then loaded in turn, and only its
    features are kept. The maps share the method's budget of digits (map_digits). PCA is fitted on
    the last model's features and applied to every epoch; t-SNE runs from the last epoch back, each
    one starting from the layout of the epoch after it. `progress(text, fraction)` is called before
    each step."""
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")
    n, _ = map_digits(n, len(models), method, len(y_test))
    idx, x, labels = sample_inputs(x_test, y_test, n)
    say = progress or (lambda text, fraction: None)
    feats, preds = [], []
    for i, source in enumerate(models):
        say(f"Features of {n:,} digits, model {i + 1} of {len(models)}", i / (len(models) + 2))
        model = source if isinstance(source, nn.Module) else load_checkpoint(source).model
        f = penultimate(model, x)
        last = [m for _, m in leaves(model) if isinstance(m, nn.Linear)][-1]
        with torch.inference_mode():
            preds.append(last(torch.as_tensor(f)).argmax(1).numpy())
        feats.append(finite_features(f))
    raw = x.reshape(len(x), -1).numpy()
    if method == "pca":
        pca = fit_pca(feats[-1])
        layouts = [pca.transform(f).astype(np.float32) for f in feats]
        raw_xy = raw_layout(raw, method)
    else:
        layouts = [np.empty(0, dtype=np.float32)] * len(feats)
        init = None
        for step, i in enumerate(range(len(feats) - 1, -1, -1)):
            say(f"t-SNE of {n:,} digits, map {step + 1} of {len(feats)}", (step + 1) / (len(feats) + 2))
            init = layouts[i] = tsne(feats[i], init)
        say(f"t-SNE of the raw pixels of {n:,} digits", (len(feats) + 1) / (len(feats) + 2))
        raw_xy = raw_layout(raw, method)
    say("Done", 1.0)
    return [
        EmbeddingMap(idx, labels, p, xy, raw_xy, knn_separation(xy, labels), method)
        for p, xy in zip(preds, layouts)
    ]
