"""The preprocessing fields act on every dataset that shows them, and ``EvalPreprocessing``
says what the loaders do."""

import numpy as np
import pytest
import torch
from PIL import Image

from prunetune.config import load_config
from prunetune.data import build_splits, make_loaders
from prunetune.errors import ConfigError
from tests.user_path import write_stripes


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_stripes(tmp_path_factory.mktemp("tree"), train=4, val=2)


def _imagefolder(tree, *overrides):
    return load_config(None, ["data.name=imagefolder", f"data.root={tree}", "data.image_size=16",
                              "data.num_workers=0", *overrides]).data


def test_imagefolder_flips_training_images_only_with_hflip(tree):
    # A crop of the whole (square) image: only the flip can make two draws differ.
    for hflip, differ in ((False, False), (True, True)):
        train = build_splits(_imagefolder(tree, "data.crop_scale=[1, 1]", f"data.hflip={hflip}"), 0).train
        torch.manual_seed(0)
        draws = [train[0][0] for _ in range(12)]
        assert any(not torch.equal(draws[0], draw) for draw in draws) == differ


def test_imagefolder_random_crop_covers_the_configured_area(tree):
    whole = build_splits(_imagefolder(tree, "data.crop_scale=[1, 1]", "data.hflip=false"), 0).train
    small = build_splits(_imagefolder(tree, "data.crop_scale=[0.1, 0.2]", "data.hflip=false"), 0).train
    plain = build_splits(_imagefolder(tree, "data.augment=false"), 0).train
    # The whole 20px image resized to 16 is the eval view without its centre-crop margin (fraction 1).
    assert torch.allclose(whole[0][0], build_splits(_imagefolder(tree, "data.augment=false",
                                                                 "data.eval_crop_fraction=1"), 0).train[0][0])
    assert not torch.allclose(small[0][0], plain[0][0])


def test_the_described_eval_preprocessing_is_what_val_images_go_through(tree):
    config = _imagefolder(tree, "data.eval_crop_fraction=0.75", "data.mean=[0.1, 0.2, 0.3]", "data.std=[0.5, 0.4, 0.3]")
    splits = build_splits(config, 0)
    described = splits.preprocessing
    assert (described.resize, described.resize_mode, described.crop) == (21, "shorter_side", 16)
    # An independent reading of the description: PIL resize, centre crop, scale, normalise.
    path, _ = splits.val.samples[0]
    image = Image.open(path).convert("RGB").resize((described.resize,) * 2, Image.BILINEAR)  # the images are square
    offset = round((described.resize - described.crop) / 2)
    pixels = np.asarray(image, dtype=np.float32)[offset:offset + 16, offset:offset + 16] / 255.0
    expected = (torch.from_numpy(pixels).permute(2, 0, 1) - torch.tensor(described.mean).view(3, 1, 1)) / \
        torch.tensor(described.std).view(3, 1, 1)
    assert torch.allclose(splits.val[0][0], expected, atol=1e-5)


def test_in_memory_datasets_normalise_with_the_configured_mean_and_std():
    config = load_config(None, ["data.image_size=8", "data.mean=[0, 0, 0]", "data.std=[1, 1, 1]"]).data
    splits = build_splits(config, 0)
    images, _ = next(iter(make_loaders(splits, config, torch.device("cpu"), 0).val))
    assert splits.preprocessing.mean == (0.0, 0.0, 0.0) and splits.preprocessing.resize_mode == "square"
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.9  # pixels in [0, 1], unnormalised
    computed = build_splits(load_config(None, ["data.image_size=8"]).data, 0)
    assert computed.mean == computed.preprocessing.mean != (0.0, 0.0, 0.0)  # default: the train split's own


def test_in_memory_crop_padding_defaults_to_four_and_follows_the_field():
    for overrides, padding in (([], 4), (["data.crop_padding=1"], 1), (["data.augment=false"], 0)):
        config = load_config(None, ["data.image_size=8", *overrides]).data
        assert make_loaders(build_splits(config, 0), config, torch.device("cpu"), 0).train.crop_padding == padding


@pytest.mark.parametrize("overrides, message", [
    (["data.crop_scale=[0.5, 1]"], ("data.crop_scale: [0.5, 1.0] is not used by dataset 'digits': it sets the random "
                                    "resized crop of image files, which imagefolder applies; remove it")),
    (["data.eval_crop_fraction=0.9"], "data.eval_crop_fraction: 0.9 is not used by dataset 'digits'"),
    (["data.transform=m:f"], "data.transform: \"m:f\" is not used by dataset 'digits'"),
    (["data.augment=false", "data.crop_padding=2"], "data.crop_padding: 2 is not used: data.augment is false"),
    (["data.mean=[0.5]"], "data.mean: has 1 values for 3 channels (data.channels): give one per channel"),
    (["data.name=imagefolder", "data.transform=m:f", "data.hflip=false"],
     "data.hflip: false is not used: data.transform 'm:f' builds the whole preprocessing"),
    (["data.name=imagefolder", "data.crop_scale=[0.9, 0.2]"], "data.crop_scale: [0.9, 0.2] is not [low, high]"),
    (["data.name=imagefolder", "data.crop_scale=[0, 1]"], "data.crop_scale: [0.0, 1.0] is not [low, high] with 0 <"),
    (["data.std=[1, 0, 1]"], "data.std: [1.0, 0.0, 1.0] has a value <= 0"),
    (["data.name=imagefolder", "data.transform=nocolon"], "is not of the form 'package.module:callable'"),
])
def test_a_preprocessing_field_that_would_not_act_is_refused_naming_it(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides)
    assert message in str(caught.value)
