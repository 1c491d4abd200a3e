import pytest

from mnist_core.learn.config import ConfigError, TrainConfig, field_help
from mnist_core.learn.models import REGISTRY


@pytest.mark.parametrize(
    "changes,needle",
    [
        (dict(lr=-0.1), "learning rate must be above 0"),
        (dict(batch_size=0), "batch size must be between 1"),
        (dict(model="resnet"), "unknown model 'resnet'"),
        (dict(epochs=0), "epochs must be between 1"),
        (dict(optimizer="rmsprop"), "optimizer must be one of sgd, adam, adamw"),
        (dict(nesterov=True, optimizer="adam"), "Nesterov momentum needs the sgd optimizer"),
        (dict(patience=2, val_fraction=0.0), "early stopping (patience > 0) needs a validation split"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(batch_size="64"), "batch_size must be int"),
        (dict(model_args={"dropout": 2.0}), "model arguments for 'cnn_basic' are invalid"),
        (dict(model_args={"wings": 2}), "model arguments for 'cnn_basic' are invalid"),
    ],
)
def test_bad_values_give_one_clear_message(changes, needle):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(changes)
    assert needle in str(err.value)
    assert str(err.value).startswith("Invalid training configuration:")


def test_several_problems_reported_together():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(dict(lr=-1, batch_size=0))
    assert "learning rate" in str(err.value) and "batch size" in str(err.value)


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({"learning_rate": 0.1})


@pytest.mark.parametrize("key", list(REGISTRY))
def test_every_preset_is_a_valid_config(key):
    cfg = TrainConfig.for_model(key)
    assert cfg.model == key
    for name, value in REGISTRY[key].preset.items():
        assert getattr(cfg, name) == value


def test_preset_overrides_and_replace():
    cfg = TrainConfig.for_model("mlp_128_64", epochs=1)
    assert cfg.epochs == 1 and cfg.batch_size == 32 and cfg.weight_decay == 1e-4
    assert cfg.replace(lr=0.5).lr == 0.5
    with pytest.raises(ConfigError):
        cfg.replace(lr=0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_every_setting_has_help_text():
    assert all(len(h) > 5 for h in field_help().values())
