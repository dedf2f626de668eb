from prunetune.config import load_config
from prunetune.models import build_model, measure


def _model_config(*overrides):
    return load_config(None, list(overrides)).model


def test_measure_leaves_the_train_mode_as_it_was():
    model = build_model(_model_config("model.name=tiny_cnn"), num_classes=10).train()
    measure(model, 3, 16)
    assert model.training
