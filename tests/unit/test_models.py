import pytest
import torch

from mnist_core.learn.models import REGISTRY, build_model, count_parameters, flops, layer_table


@pytest.mark.parametrize("key", list(REGISTRY))
def test_every_model_maps_a_batch_to_ten_logits(key):
    model = build_model(key).eval()
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    table = layer_table(model)
    assert table[-1]["output_shape"] == (10,)
    assert sum(r["params"] for r in table) == count_parameters(model)
    assert flops(model) > 0
    spec = REGISTRY[key]
    assert spec.description and spec.reference and spec.preset


def test_cnn_basic_has_exactly_the_reference_parameter_count():
    assert count_parameters(build_model("cnn_basic")) == 421_642


def test_reference_parameter_counts():
    assert count_parameters(build_model("perceptron")) == 7_850
    assert count_parameters(build_model("mlp_128_64")) == 784 * 128 + 128 + 128 * 64 + 64 + 650
    assert count_parameters(build_model("mlp_500_125")) == 784 * 500 + 500 + 500 * 125 + 125 + 1260


def test_cnn_depths_and_overrides():
    for key, convs in [("cnn_1", 1), ("cnn_2", 2), ("cnn_3", 3)]:
        n = sum(isinstance(m, torch.nn.Conv2d) for m in build_model(key).modules())
        assert n == convs
    no_bn = build_model("cnn_2", {"batchnorm": False, "dropout": 0.0})
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in no_bn.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in no_bn.modules())
    assert build_model("deep", {"hidden": [32]}).model_args["hidden"] == [32]


def test_layer_table_shapes_for_cnn_basic():
    rows = layer_table(build_model("cnn_basic"))
    convs = [r for r in rows if r["type"] == "Conv2d"]
    assert [r["output_shape"] for r in convs] == [(32, 28, 28), (64, 14, 14)]
    assert [r["params"] for r in convs] == [320, 18_496]


def test_fast_cnn_never_works_on_the_full_grid_and_normalises_after_pooling():
    rows = layer_table(build_model("fast_cnn"))
    assert [r["type"] for r in rows[:7]] == [
        "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"
    ]  # fmt: skip
    assert rows[0]["output_shape"] == (16, 14, 14)  # the stem's stride did the first stage's pooling
    assert all(r["output_shape"][-2:] != (28, 28) for r in rows if len(r["output_shape"]) == 3)
    assert [r["output_shape"] for r in rows if r["type"] == "BatchNorm2d"] == [
        (16, 14, 14), (32, 7, 7), (64, 3, 3)
    ]  # fmt: skip
    two = layer_table(build_model("fast_cnn", {"convs": 2}))  # only a stage's first conv strides
    assert [r["output_shape"] for r in two if r["type"] == "Conv2d"][:2] == [(16, 14, 14), (16, 14, 14)]


def test_a_fast_cnn_saved_before_pool_first_and_stem_stride_still_loads():
    """A run's checkpoint keeps its model's arguments; older fast_cnn runs had neither option."""
    old = build_model("fast_cnn", {"channels": [16, 32, 64], "pool_first": False, "stem_stride": 1})
    saved = {k: v.clone() for k, v in old.state_dict().items()}
    again = REGISTRY["fast_cnn"].cls(channels=[16, 32, 64], batchnorm=True)  # the arguments stored then
    again.load_state_dict(saved)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(again.eval()(x), old.eval()(x))
    assert layer_table(again)[0]["output_shape"] == (16, 28, 28)


@pytest.mark.parametrize(
    "key,args",
    [
        ("cnn_1", {"dropout": 1.5}),
        ("cnn_1", {"channels": []}),
        ("deep", {"hidden": [0]}),
        ("cnn_1", {"kernel": 4}),
        ("fast_cnn", {"stem_stride": 3}),
    ],
)
def test_bad_arguments_raise_value_error(key, args):
    with pytest.raises(ValueError):
        build_model(key, args)


def test_summaries_use_real_weights_and_never_import_sympy():
    """The Models and Train pages' tables: the meta device's shape checks import sympy on first use
    (seconds on the Train page's first visit beside a run); real weights on the CPU do not."""
    import subprocess
    import sys

    code = (
        "import sys; from mnist_core.learn.models import REGISTRY, summary; "
        "rows = [summary(k) for k in REGISTRY]; print('sympy' in sys.modules, rows[0].layers[0]['params'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, params = out.stdout.split()
    assert imported == "False"
    first = layer_table(build_model(next(iter(REGISTRY))))[0]
    assert int(params) == first["params"]
