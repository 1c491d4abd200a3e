import pytest
import torch

from mnist_core.models import REGISTRY, build_model, count_parameters, flops, layer_table


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


@pytest.mark.parametrize(
    "key,args",
    [
        ("cnn_1", {"dropout": 1.5}),
        ("cnn_1", {"channels": []}),
        ("deep", {"hidden": [0]}),
        ("cnn_1", {"kernel": 4}),
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
        "import sys; from mnist_core.models import REGISTRY, summary; "
        "rows = [summary(k) for k in REGISTRY]; print('sympy' in sys.modules, rows[0].layers[0]['params'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, params = out.stdout.split()
    assert imported == "False"
    first = layer_table(build_model(next(iter(REGISTRY))))[0]
    assert int(params) == first["params"]
