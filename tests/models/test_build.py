import pytest
import torch
from torch import nn

from prunetune.config import load_config
from prunetune.errors import ModelError
from prunetune.models import build_model, measure, resolve
from tests.planted import Planted


def _model_config(*overrides):
    return load_config(None, list(overrides)).model


def test_mobilenet_v3_small_two_classes_at_96_has_seed_001_param_count():
    model = build_model(_model_config("model.name=mobilenet_v3_small"), num_classes=2)
    complexity = measure(model, channels=3, image_size=96)
    assert complexity.params == 1_519_906
    assert 11_000_000 < complexity.macs < 13_000_000


def test_names_resolve_to_prunetune_torchvision_timm_and_callables():
    assert resolve("tiny_mobilenet") == ("prunetune", "tiny_mobilenet")
    assert resolve("resnet18") == ("torchvision", "resnet18")
    assert resolve("timm:resnet18") == ("timm", "resnet18")
    assert resolve("mobilevit_xxs") == ("timm", "mobilevit_xxs")
    assert resolve("torch.nn:Identity") == ("callable", "torch.nn:Identity")


def test_timm_model_gets_classes_and_channels():
    model = build_model(_model_config("model.name=timm:resnet10t"), num_classes=7, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)


def test_torchvision_model_is_adapted_to_one_channel():
    model = build_model(_model_config("model.name=resnet18"), num_classes=4, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_module_callable_gets_the_arguments_it_accepts():
    model = build_model(_model_config("model.name=prunetune.models.zoo:tiny_resnet", "model.kwargs={width: 8}"), 3)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 3)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelError, match=r"model.name: unknown model 'resnet181'; did you mean resnet18"):
        resolve("resnet181")
    with pytest.raises(ModelError, match="no timm model 'notamodel'"):
        resolve("timm:notamodel")
    with pytest.raises(ModelError, match="cannot import 'no_such_package'"):
        build_model(_model_config("model.name=no_such_package:build"), 3)


def test_bad_builder_arguments_name_the_kwargs_field():
    with pytest.raises(ModelError, match="model.kwargs: building 'tiny_cnn' failed"):
        build_model(_model_config("model.name=tiny_cnn", "model.kwargs={depth: 3}"), 3)


def _saved(tmp_path, obj, name="ckpt.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_state_dict_checkpoint_loads_bare_or_nested(tmp_path):
    source = build_model(_model_config("model.name=tiny_cnn"), 10)
    for content in (source.state_dict(), {"state_dict": source.state_dict(), "epoch": 3}):
        path = _saved(tmp_path, content)
        loaded = build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={path}"), 10)
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), source.state_dict().values()))


def test_whole_module_checkpoint_loads_with_checkpoint_format_module(tmp_path):
    source = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    path = _saved(tmp_path, source)
    loaded = build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={path}",
                                       "model.checkpoint_format=module"), 10)
    assert isinstance(loaded, nn.Sequential) and torch.equal(loaded[0].weight, source[0].weight)


@pytest.mark.parametrize("content", ["planted", "module"])
def test_auto_checkpoint_format_unpickles_nothing_and_names_the_trusted_format(tmp_path, content):
    marker = tmp_path / "code-ran"
    obj = {"state_dict": Planted(marker)} if content == "planted" else nn.Sequential(nn.Linear(2, 2))
    path = _saved(tmp_path, obj)
    with pytest.raises(ModelError, match="not a plain state_dict .*set model.checkpoint_format=module .*trust"):
        build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={path}"), 10)
    assert not marker.exists()


def test_checkpoint_errors_say_what_was_expected(tmp_path):
    module_file = _saved(tmp_path, nn.Sequential(nn.Linear(2, 2)), "module.pt")
    with pytest.raises(ModelError, match="is not a plain state_dict .*set model.checkpoint_format=module"):
        build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={module_file}",
                                  "model.checkpoint_format=state_dict"), 10)
    other = _saved(tmp_path, build_model(_model_config("model.name=tiny_resnet"), 10).state_dict(), "other.pt")
    with pytest.raises(ModelError, match="is a state_dict that does not fit model"):
        build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={other}"), 10)
    with pytest.raises(ModelError, match="but a whole nn.Module was expected"):
        build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={other}",
                                  "model.checkpoint_format=module"), 10)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ModelError, match="is not a torch checkpoint"):
        build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={garbage}"), 10)
    with pytest.raises(ModelError, match="does not exist"):
        build_model(_model_config("model.name=tiny_cnn", f"model.checkpoint={tmp_path / 'absent.pt'}"), 10)
