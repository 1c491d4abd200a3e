import pytest
import torch

from mnist_core.data.augment import augment_batch
from mnist_core.data.pixels import BLACK, normalize


@pytest.fixture()
def digits(mnist):
    return normalize(mnist.train_images[:64]), mnist.train_labels[:64]


@pytest.mark.parametrize(
    "kind",
    [
        dict(rotate=15),
        dict(translate=0.1),
        dict(scale=0.15),
        dict(erase=1.0),
        dict(rotate=10, translate=0.1, scale=0.1, erase=0.5),
    ],
)
def test_shape_dtype_and_change(digits, kind):
    x, _ = digits
    out = augment_batch(x, generator=torch.Generator().manual_seed(0), **kind)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)
    assert torch.equal(x, digits[0])  # input untouched


def test_off_is_identity(digits):
    x, _ = digits
    assert torch.equal(augment_batch(x), x)


def test_per_sample_randomness(mnist):
    one = normalize(mnist.train_images[:1]).repeat(16, 1, 1, 1)
    out = augment_batch(one, rotate=20, translate=0.1, generator=torch.Generator().manual_seed(0))
    flat = out.flatten(1)
    distinct = {tuple(row.round(decimals=3).tolist()) for row in flat}
    assert len(distinct) == 16


def test_seeded_generator_is_reproducible(digits):
    x, _ = digits
    a = augment_batch(x, rotate=10, erase=0.5, generator=torch.Generator().manual_seed(3))
    b = augment_batch(x, rotate=10, erase=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_warp_pads_with_black_and_keeps_ink(digits):
    x, _ = digits
    out = augment_batch(x, translate=0.25, generator=torch.Generator().manual_seed(1))
    # corners stay background; most ink survives a shift of at most 7 pixels
    assert torch.allclose(out[:, :, 0, 0], torch.full_like(out[:, :, 0, 0], BLACK), atol=1e-4)
    ink_before = (x > 0).float().sum((1, 2, 3))
    ink_after = (out > 0).float().sum((1, 2, 3))
    assert (ink_after > 0.5 * ink_before).float().mean() > 0.9


def test_labels_preserved_by_a_trained_model(mnist):
    """Mild augmentation keeps the class: a model trained without it still reads the digits."""
    from mnist_core.learn.checkpoints import load_checkpoint
    from mnist_core.learn.evaluate import predict_logits
    from mnist_core.paths import default_model_path

    model = load_checkpoint(default_model_path()).model
    x = normalize(mnist.test_images[:500])
    y = mnist.test_labels[:500]
    aug = augment_batch(x, rotate=10, translate=0.08, scale=0.08, generator=torch.Generator().manual_seed(0))
    acc = (predict_logits(model, aug).argmax(1) == y).float().mean().item()
    assert acc > 0.97
