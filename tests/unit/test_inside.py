"""Inside the network, in the core: hooks on every layer, weight images, PCA maps, dataset examples, PNGs."""

import numpy as np
import pytest
import torch
from torch import nn

from mnist_core.analysis import inside
from mnist_core.figures import pictures
from mnist_core.learn.models import REGISTRY, build_model


def expected_shapes(model: nn.Module) -> list[tuple[str, tuple]]:
    """The documented output shape of every leaf layer for one 28x28 image, from the layer's own settings."""
    shape: tuple = (1, 28, 28)
    out = []
    for name, m in inside.leaves(model):
        if isinstance(m, nn.Conv2d):
            s = m.stride[0]  # 'same' padding: the grid shrinks only by the conv's stride
            shape = (m.out_channels, -(-shape[1] // s), -(-shape[2] // s))
        elif isinstance(m, nn.MaxPool2d):
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            shape = (shape[0], 1, 1)
        elif isinstance(m, nn.Flatten):
            shape = (int(np.prod(shape)),)
        elif isinstance(m, nn.Linear):
            assert shape == (m.in_features,), f"{name}: a Linear fed {shape}"
            shape = (m.out_features,)
        out.append((name, shape))
    return out


@pytest.mark.parametrize("key", list(REGISTRY))
def test_hooks_capture_every_layer_with_its_shape(key):
    model = build_model(key)
    seen = inside.capture(model, torch.zeros(2, 1, 28, 28))
    assert [(n, tuple(o.shape[1:])) for n, _, o in seen[:-1]] == expected_shapes(model)
    assert seen[-1][2].shape == (2, 10)
    stages = inside.activations(model, np.zeros((28, 28), np.float32))
    assert stages[0].kind == "input" and stages[0].shape == (1, 28, 28)
    assert stages[-1].kind == "output" and stages[-1].shape == (10,)
    assert abs(float(stages[-1].value.sum()) - 1) < 1e-5
    shapes = dict(expected_shapes(model))
    for s in stages[1:]:
        assert s.shape == shapes[s.name] and s.kind != "other"
        assert s.kind == ("maps" if len(s.shape) == 3 else "vector" if s is not stages[-1] else "output")
    convs = [m.out_channels for _, m in inside.leaves(model) if isinstance(m, nn.Conv2d)]
    assert [s.shape[0] for s in stages if s.title.startswith("conv")] == convs


def test_the_stages_reproduce_the_models_own_prediction(mnist):
    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.paths import default_model_path

    model = load_checkpoint(default_model_path()).model
    x = inside.test_inputs(mnist)[:5]
    for i in range(5):
        stages = inside.activations(model, x[i : i + 1])
        assert np.allclose(stages[-1].value, model(x[i : i + 1]).softmax(1)[0].detach().numpy(), atol=1e-5)
        assert inside.prediction(stages)[0] == int(mnist.test_labels[i])


def test_an_unknown_layer_is_shown_by_shape_with_no_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Tanh(), nn.Linear(16, 10))
    stages = inside.activations(model, np.zeros((28, 28), np.float32))
    other = [s for s in stages if s.kind == "other"]
    assert [(s.layers, s.shape) for s in other] == [(["Tanh"], (16,))]
    assert stages[-1].kind == "output"


def test_perceptron_weight_images_look_like_the_class_means(mnist):
    from mnist_core.learn.config import TrainConfig
    from mnist_core.learn.engine import train_model

    result = train_model(TrainConfig.for_model("perceptron", epochs=1, limit=5000), mnist=mnist)
    kind, templates = inside.first_weight(result.model)
    assert kind == "linear" and templates.shape == (10, 28, 28)
    means = np.stack([mnist.train_images[mnist.train_labels == d].float().mean(0).numpy() for d in range(10)])
    means -= means.mean(0)  # what tells one digit from the others
    corr = np.corrcoef(templates.reshape(10, -1), means.reshape(10, -1))[:10, 10:]
    own = np.diag(corr)
    others = (corr.sum(1) - own) / 9
    assert (own > others).all() and own.mean() > others.mean() + 0.3, corr.round(2)
    # a transposed reshape (a classic slip) destroys the resemblance
    wrong = templates.transpose(0, 2, 1).reshape(10, -1)
    assert np.diag(np.corrcoef(wrong, means.reshape(10, -1))[:10, 10:]).mean() < own.mean() - 0.2


def test_pca_map_is_deterministic_and_separates_digits(mnist):
    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.paths import default_model_path

    model = load_checkpoint(default_model_path()).model
    x, y = inside.test_inputs(mnist), mnist.test_labels
    (first,) = inside.embedding_maps([model], x, y, 600, "pca")
    (again,) = inside.embedding_maps([load_checkpoint(default_model_path()).model], x, y, 600, "pca")
    assert np.array_equal(first.xy, again.xy) and np.array_equal(first.raw_xy, again.raw_xy)
    assert np.bincount(first.labels, minlength=10).tolist() == [60] * 10  # stratified
    assert first.separation > 0.8 and first.separation > inside.knn_separation(first.raw_xy, first.labels)


def test_pca_over_epochs_shares_the_last_epochs_axes(mnist):
    x, y = inside.test_inputs(mnist), mnist.test_labels
    torch.manual_seed(0)
    a, b = build_model("deep"), build_model("deep")
    maps = inside.embedding_maps([a, b], x, y, 300, "pca")
    idx = maps[0].indices
    fa, fb = inside.penultimate(a, x[idx]), inside.penultimate(b, x[idx])
    pca = inside.fit_pca(fb)
    assert np.allclose(maps[0].xy, pca.transform(fa), atol=1e-4)
    assert np.allclose(maps[1].xy, pca.transform(fb), atol=1e-4)


def test_pca_and_separation_agree_with_scikit_learn(mnist):
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    raw = mnist.test_images[:800].reshape(800, -1).float().numpy() / 255
    ours = inside.fit_pca(raw).transform(raw)
    theirs = PCA(n_components=2, svd_solver="full").fit_transform(raw)
    assert np.allclose(np.abs(ours), np.abs(theirs), atol=1e-3)  # the same axes, up to sign
    labels = mnist.test_labels[:800].numpy()
    knn = KNeighborsClassifier(n_neighbors=5).fit(ours, labels)
    dist, idx = knn.kneighbors(ours, n_neighbors=6)
    votes = labels[idx[:, 1:]]
    expected = np.mean([np.bincount(v, minlength=10).argmax() == t for v, t in zip(votes, labels)])
    assert abs(inside.knn_separation(ours, labels) - expected) < 0.01


def test_stratified_sample_and_the_cap():
    labels = np.repeat(np.arange(10), [100, 50, 30, 100, 100, 100, 100, 100, 100, 100])
    idx = inside.stratified_sample(labels, 200)
    assert len(set(idx)) == 200 and np.bincount(labels[idx], minlength=10).min() == 20
    assert inside.cap_sample(2000) == (2000, None)
    n, message = inside.cap_sample(50_000)
    assert n == inside.MAX_SAMPLE and "capped at 10,000" in message


def test_dataset_examples_equal_a_brute_force_top_k(mnist):
    torch.manual_seed(1)
    model = build_model("cnn_basic").eval()
    x = inside.test_inputs(mnist)[:60]
    fast = inside.top_examples(model, x, k=5)
    assert set(fast) == set(inside.example_stages(model))
    for name, (idx, scores) in fast.items():
        brute = []
        for i in range(len(x)):  # one image at a time, straight from the displayed activations
            value = next(s.value for s in inside.activations(model, x[i : i + 1]) if s.name == name)
            brute.append(value.reshape(len(value), -1).max(1))
        brute = np.stack(brute)  # (images, channels)
        for c in range(brute.shape[1]):
            assert np.allclose(np.sort(brute[:, c])[::-1][:5], scores[c], atol=1e-5)
            assert np.allclose(brute[idx[c], c], scores[c], atol=1e-5)


def test_dataset_examples_are_cached_per_checkpoint_file(tmp_path, mnist, monkeypatch):
    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.paths import default_model_path

    path = tmp_path / "m.pt"
    path.write_bytes(default_model_path().read_bytes())
    model = load_checkpoint(path).model
    calls = []
    real = inside.top_examples
    monkeypatch.setattr(inside, "top_examples", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = inside.test_inputs(mnist)[:50]
    first = inside.dataset_examples(path, model, x)
    assert inside.dataset_examples(path, model, x) is first and len(calls) == 1
    import os

    os.utime(path, (1, 1))  # a new version of the file
    inside.dataset_examples(path, model, x)
    assert len(calls) == 2


def test_weight_movement_is_the_relative_change():
    a = {"c.weight": torch.ones(2, 1, 3, 3), "bn.weight": torch.ones(2), "l.weight": torch.ones(4, 2)}
    b = {
        "c.weight": torch.ones(2, 1, 3, 3) * 1.5,
        "bn.weight": torch.ones(2) * 9,
        "l.weight": torch.ones(4, 2),
    }
    moved = inside.weight_movement([a, b, b])
    assert moved == {"c (conv)": [pytest.approx(0.5), 0.0], "l (linear)": [0.0, 0.0]}


def test_tile_places_every_channel():
    maps = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    grid = pictures.tile(maps, cols=2)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    assert np.array_equal(grid[3:5, 4:7], maps[3])
    assert np.isnan(grid[2]).all() and np.isnan(grid[6:, 4:]).all()


def test_cli_writes_pngs_and_key_values(tmp_path, capsys):
    from PIL import Image

    from mnist_core.cli import main
    from mnist_core.paths import default_model_path

    assert (
        main(
            [
                "inside",
                str(default_model_path()),
                "--index",
                "0",
                "--out",
                str(tmp_path / "o"),
                "--sample",
                "500",
            ]
        )
        == 0
    )
    out = dict(tok.split("=", 1) for tok in capsys.readouterr().out.split())
    assert out["prediction"] == "7" and out["out"] == str(tmp_path / "o")
    files = sorted((tmp_path / "o").glob("*.png"))
    assert int(out["files"]) == len(files) >= 10
    names = [f.name for f in files]
    assert "embedding.png" in names and "filters.png" in names and any("conv1" in n for n in names)
    img = np.asarray(Image.open(tmp_path / "o" / "embedding.png").convert("RGB"))
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10  # dots in ten colours, not a blank image
    with pytest.raises(SystemExit):  # an input is required: --image or --index
        main(["inside", str(default_model_path()), "--out", str(tmp_path / "p")])


def test_cli_reads_an_image_file(tmp_path, capsys, mnist):
    from PIL import Image

    from mnist_core.cli import main
    from mnist_core.paths import default_model_path

    digit = tmp_path / "d.png"
    Image.fromarray(255 - mnist.test_images[1].numpy()).resize((200, 200)).save(digit)  # dark ink on white
    assert (
        main(
            [
                "inside",
                str(default_model_path()),
                "--image",
                str(digit),
                "--out",
                str(tmp_path / "o"),
                "--sample",
                "200",
            ]
        )
        == 0
    )
    assert f"prediction={int(mnist.test_labels[1])}" in capsys.readouterr().out


def test_the_pca_eigensolver_runs_on_one_thread(monkeypatch):
    """Beside a training run a team of threads waits at each of the solver's tiny steps (seconds
    instead of 0.1 s on 2 cores); the block restores the thread count after it."""
    seen = []
    eigh = torch.linalg.eigh

    def counting(a):
        seen.append(torch.get_num_threads())
        return eigh(a)

    monkeypatch.setattr(torch.linalg, "eigh", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        xy = inside.fit_pca(np.random.default_rng(0).normal(size=(200, 30))).transform(np.ones((3, 30)))
        assert seen == [1] and torch.get_num_threads() == 2 and xy.shape == (3, 2)
    finally:
        torch.set_num_threads(before)


def test_the_raw_pixels_layout_is_computed_once_per_sample(monkeypatch):
    """Every epoch's map lays out the same sample: its raw-pixel PCA is computed the first time only,
    and each caller gets the same layout as computing it afresh, in an array of its own."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((120, 1, 28, 28), dtype=np.float32))
    y = torch.arange(120) % 10
    model = build_model("mlp_128_64")
    calls = []
    real_fit_pca = inside.fit_pca
    monkeypatch.setattr(inside, "fit_pca", lambda f: calls.append(f.shape) or real_fit_pca(f))
    first = inside.embedding_maps([model], x, y, 100, "pca")[0]
    second = inside.embedding_maps([model], x, y, 100, "pca")[0]
    raw = x[first.indices].reshape(100, -1).numpy()
    assert calls.count((100, 784)) == 1  # the raw pixels once; the features each time
    fresh = real_fit_pca(raw).transform(raw).astype(np.float32)
    np.testing.assert_array_equal(first.raw_xy, fresh)
    np.testing.assert_array_equal(second.raw_xy, fresh)
    second.raw_xy[:] = 0  # a caller's array is its own
    np.testing.assert_array_equal(inside.raw_layout(raw, "pca"), fresh)
    other = inside.embedding_maps([model], x * 0.5, y, 100, "pca")[0]  # other pixels: computed
    assert calls.count((100, 784)) == 2 and not np.array_equal(other.raw_xy, fresh)


# ---------------- a run with 1,000 epochs: Inside reads a bounded sample ----------------
@pytest.fixture(scope="module")
def thousand_epochs(tmp_path_factory):
    """(store, run id) of a perceptron run with 1,000 epoch files (support.long_run)."""
    from mnist_core.jobs.store import RunStore
    from support.long_run import long_run

    store = RunStore(tmp_path_factory.mktemp("long") / "store")
    return store, long_run(store, 1000)


def test_epochs_are_sampled_evenly_with_the_first_and_the_last():
    from mnist_core.analysis.timeline import MAX_EPOCHS_SHOWN, sample_epochs

    shown = sample_epochs(list(range(1, 1001)))
    assert len(shown) == MAX_EPOCHS_SHOWN == 16 and shown[0] == 1 and shown[-1] == 1000
    gaps = np.diff(shown)
    assert shown == sorted(set(shown)) and gaps.max() - gaps.min() <= 1  # evenly spread
    assert sample_epochs([3, 4, 5]) == [3, 4, 5]  # a short run: every epoch
    assert sample_epochs(list(range(17)), 16)[-1] == 16


def test_filters_over_time_of_a_thousand_epochs_read_sixteen_of_them(thousand_epochs, monkeypatch):
    from mnist_core.analysis import memory, timeline
    from mnist_core.learn import checkpoints as ck
    from support.long_run import scale

    store, run_id = thousand_epochs
    checkpoints = store.checkpoints(run_id)
    assert len(checkpoints) == 1000
    memory.clear()
    read = []
    real = ck.read_checkpoint
    monkeypatch.setattr(timeline, "read_checkpoint", lambda p, *a: read.append(p) or real(p, *a))
    history = timeline.filter_history(checkpoints)
    assert len(read) == 16 and history.epochs == timeline.sample_epochs([e for e, _ in checkpoints])
    assert history.total == 1000 and history.note.startswith("Showing 16 of 1,000 epochs")
    first = history.frames[0] / scale(1)  # epoch e's weights are the same ones times scale(e)
    assert history.kind == "linear" and first.shape == (10, 28, 28)
    for epoch, frame in zip(history.epochs, history.frames):
        np.testing.assert_allclose(frame, first * scale(epoch), rtol=1e-5, atol=1e-6)
    (moved,) = history.movement.values()  # the perceptron's one weight matrix
    expected = [(scale(b) - scale(a)) / scale(a) for a, b in zip(history.epochs, history.epochs[1:])]
    np.testing.assert_allclose(moved, expected, rtol=1e-4)
    assert memory.nbytes(history) < 2**20  # 16 frames of ten 28x28 images, not 1,000 state dicts
    assert timeline.filter_history(checkpoints) is history and len(read) == 16  # kept in memory


def test_maps_of_a_thousand_epochs_share_one_test_sets_digits(thousand_epochs, mnist):
    from mnist_core.analysis import timeline

    store, run_id = thousand_epochs
    checkpoints = store.checkpoints(run_id)
    plan = timeline.plan_maps(checkpoints, 10_000, "pca")  # the most a learner can ask for
    assert len(plan.epochs) == 16 and plan.epochs[0] == 1 and plan.epochs[-1] == 1000
    assert plan.digits == inside.MAX_SAMPLE // 16 and "16 maps share 10,000 digits" in plan.capped
    assert plan.note.startswith("Showing 16 of 1,000 epochs")
    tsne = timeline.plan_maps(checkpoints, 10_000, "tsne")
    assert len(tsne.epochs) == timeline.MAX_TSNE_EPOCHS and tsne.digits * len(tsne.epochs) <= 2_000
    assert timeline.plan_maps(checkpoints[:2], 2000, "pca").digits == 2000  # a short run: as asked
    assert not timeline.maps_ready(plan)
    maps = timeline.epoch_maps(plan, inside.test_inputs(mnist), mnist.test_labels)
    assert len(maps) == 16 and all(len(m.indices) == plan.digits for m in maps)
    assert timeline.maps_ready(plan)


def test_embedding_maps_share_the_budget_whoever_calls_them(mnist):
    """The core caps the digits of a set of maps itself: a caller passing 16 models and 10,000 digits
    gets 625 per map, and a single t-SNE map stays at 2,000 digits."""
    models = [build_model("perceptron") for _ in range(16)]
    maps = inside.embedding_maps(models, inside.test_inputs(mnist), mnist.test_labels, 10_000, "pca")
    assert len(maps) == 16 and {len(m.indices) for m in maps} == {625}
    assert inside.map_digits(10_000, 1, "tsne")[0] == 2_000
    assert inside.map_digits(10_000, 1, "pca") == (10_000, None)


def test_a_diverged_runs_map_is_drawn_not_an_error(mnist):
    """A run whose learning rate was far too high ends with NaN or huge weights: its features are
    NaN, infinite or overflow float32 when squared. The map is drawn (PCA and t-SNE) from finite
    features, its shape kept where the values were only large."""
    big = np.random.default_rng(0).normal(size=(300, 20)).astype(np.float32) * 1e30
    scaled = inside.finite_features(big)
    assert np.isfinite(scaled).all() and np.abs(scaled).max() <= 1e4
    np.testing.assert_allclose(scaled / np.abs(scaled).max(), big / np.abs(big).max(), rtol=1e-5)
    torch.manual_seed(0)
    model = build_model("mlp_128_64")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    x, y = inside.test_inputs(mnist), mnist.test_labels
    for method in ("pca", "tsne"):
        (emap,) = inside.embedding_maps([model], x, y, 200, method)
        assert np.isfinite(emap.xy).all() and len(emap.xy) == 200
