"""Saliency maps: shapes, targets, applicability and the sanity check, on every model family."""

import numpy as np
import pytest
import torch

from mnist_core.analysis.saliency import BLACK, METHODS, ExplainError, attribute, methods_for, randomized_copy
from mnist_core.data.pixels import normalize
from mnist_core.learn.models import build_model


@pytest.fixture(scope="module")
def digit(mnist):
    return normalize(mnist.test_images[:1]), int(mnist.test_labels[0])


@pytest.mark.parametrize("key", ["perceptron", "mlp_128_64", "cnn_basic", "better_cnn"])
def test_every_method_on_every_family(key, digit):
    torch.manual_seed(0)
    model = build_model(key).eval()
    x, label = digit
    for method in methods_for(model):
        maps = [attribute(model, x, method, t) for t in (label, (label + 1) % 10)]
        for m in maps:
            assert m.shape == (28, 28) and np.isfinite(m).all()
        assert not np.allclose(maps[0], maps[1])  # the target matters
    assert ("grad_cam" in methods_for(model)) == (model.family == "cnn")


def test_grad_cam_on_an_mlp_and_bad_targets_are_clear_errors(digit):
    x, _ = digit
    with pytest.raises(ExplainError, match="needs a convolutional layer"):
        attribute(build_model("mlp_128_64"), x, "grad_cam", 3)
    with pytest.raises(ExplainError, match="digit 0-9"):
        attribute(build_model("cnn_1"), x, "saliency", 12)


def test_integrated_gradients_baseline_is_black_and_completes(digit):
    """IG attributions sum to score(x) - score(black): the baseline really is a black image."""
    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.paths import default_model_path

    model = load_checkpoint(default_model_path()).model
    x, label = digit
    attr = attribute(model, x, "integrated_gradients", label)
    with torch.no_grad():
        gap = (model(x)[0, label] - model(torch.full_like(x, BLACK))[0, label]).item()
    assert abs(attr.sum() - gap) < 0.1 * abs(gap)
    assert abs(BLACK - (-0.1307 / 0.3081)) < 1e-6


def test_sanity_check_random_weights_give_a_different_map(digit):
    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.paths import default_model_path

    trained = load_checkpoint(default_model_path()).model
    x, label = digit
    real = attribute(trained, x, "saliency", label)
    noise = attribute(randomized_copy(trained), x, "saliency", label)
    corr = np.corrcoef(real.ravel(), noise.ravel())[0, 1]
    assert corr < 0.9 and set(METHODS) >= {"saliency", "integrated_gradients", "grad_cam", "occlusion"}
