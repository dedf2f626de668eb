"""What a deployer needs to feed an exported model: class names, input, preprocessing, output.

``deployment_info(splits)`` builds it as plain data (JSON-ready) from the splits the model
was trained and evaluated on (their ``preprocessing`` is what the loaders are built from);
``prunetune export`` stores it
in both files it writes (``results/export.py``). ``preprocessing`` is the evaluation
transform as an ordered list of steps named after torchvision's transforms, so it can be
rebuilt with torchvision, PIL or plain tensor code:

- ``convert``: the PIL mode the image is read in, ``RGB`` or ``L`` (ITU-R 601-2 luma,
  0.299 R + 0.587 G + 0.114 B, for one-channel inputs);
- ``resize``: ``size`` [H, W] (the whole image, aspect ratio not kept) or ``shorter_side`` N
  (the longer side to ``int(N * long / short)``, torchvision's ``Resize(N)``), bilinear with
  antialiasing (PIL's ``BILINEAR``);
- ``center_crop``: ``size`` [H, W], offsets ``round((side - crop) / 2)``;
- ``callable``: the job's ``data.transform`` (``package.module:callable``), called with
  ``train=False``, does everything after ``convert``;
- ``to_tensor``: float32 CHW, pixel values times ``scale`` (1/255);
- ``normalize``: ``(x - mean) / std`` per channel.
"""

from __future__ import annotations

from typing import Any

from prunetune.data.preprocessing import EvalPreprocessing
from prunetune.data.registry import Splits

DEPLOYMENT_FILE = "deployment.json"  # a `prunetune run` directory's deployment_info (pipeline/run.py)


def deployment_info(splits: Splits) -> dict[str, Any]:
    """Class names, input shape, evaluation preprocessing and output of a model trained on ``splits``."""
    channels, size = splits.channels, splits.image_size
    return {
        "class_names": list(splits.class_names),
        "input": {"shape": ["batch", channels, size, size], "dtype": "float32", "layout": "NCHW",
                  "color": "RGB" if channels == 3 else "grayscale"},
        "preprocessing": preprocessing_steps(splits),
        "output": {"shape": ["batch", splits.num_classes], "kind": "logits",
                   "meaning": "argmax over dim 1 is the index into class_names"},
    }


def preprocessing_steps(splits: Splits) -> list[dict[str, Any]]:
    """``splits.preprocessing`` (the one description the loaders are built from) as ordered steps.

    A dataset plugin that describes nothing gets the in-memory rule (resized whole to the
    input size, normalised by the splits' mean and std); a user's ``data.transform`` is named,
    as only that callable (``train=False``) knows what it does.
    """
    described = splits.preprocessing or tensor_preprocessing_of(splits)
    convert = {"op": "convert", "mode": "RGB" if described.channels == 3 else "L"}
    if described.transform is not None:
        return [convert, {"op": "callable", "transform": described.transform, "call": "transform(train=False)"}]
    resize = ({"op": "resize", "size": [described.resize, described.resize]} if described.resize_mode == "square"
              else {"op": "resize", "shorter_side": described.resize})
    crop = [{"op": "center_crop", "size": [described.crop, described.crop]}] if described.crop else []
    return [convert, {**resize, "interpolation": described.interpolation, "antialias": True}, *crop,
            {"op": "to_tensor", "scale": 1 / 255},
            {"op": "normalize", "mean": list(described.mean), "std": list(described.std)}]


def tensor_preprocessing_of(splits: Splits) -> EvalPreprocessing:
    size = splits.image_size
    return EvalPreprocessing(size, splits.channels, size, "square", None, tuple(splits.mean), tuple(splits.std))
