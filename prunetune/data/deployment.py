"""What a deployer needs to feed an exported model: class names, input, preprocessing, output.

``deployment_info(job, splits)`` builds it as plain data (JSON-ready) from the job's data
section and the splits the model was trained and evaluated on; ``prunetune export`` stores it
in both files it writes (``results/export.py``). ``preprocessing`` is the evaluation
transform as an ordered list of steps named after torchvision's transforms, so it can be
rebuilt with torchvision, PIL or plain tensor code:

- ``convert``: the PIL mode the image is read in, ``RGB`` or ``L`` (ITU-R 601-2 luma,
  0.299 R + 0.587 G + 0.114 B, for one-channel inputs);
- ``resize``: ``size`` [H, W] (the whole image, aspect ratio not kept) or ``shorter_side`` N
  (the longer side to ``int(N * long / short)``, torchvision's ``Resize(N)``), bilinear with
  antialiasing (PIL's ``BILINEAR``);
- ``center_crop``: ``size`` [H, W], offsets ``round((side - crop) / 2)``;
- ``to_tensor``: float32 CHW, pixel values times ``scale`` (1/255);
- ``normalize``: ``(x - mean) / std`` per channel.
"""

from __future__ import annotations

from typing import Any

from prunetune.data.imagefolder import EVAL_RESIZE_RATIO
from prunetune.data.registry import Splits

DEPLOYMENT_FILE = "deployment.json"  # a `prunetune run` directory's deployment_info (pipeline/run.py)


def deployment_info(job, splits: Splits) -> dict[str, Any]:
    """Class names, input shape, evaluation preprocessing and output of a model trained on ``splits``."""
    channels, size = splits.channels, splits.image_size
    return {
        "class_names": list(splits.class_names),
        "input": {"shape": ["batch", channels, size, size], "dtype": "float32", "layout": "NCHW",
                  "color": "RGB" if channels == 3 else "grayscale"},
        "preprocessing": [
            {"op": "convert", "mode": "RGB" if channels == 3 else "L"},
            *eval_transform(job.data, splits),
            {"op": "to_tensor", "scale": 1 / 255},
            {"op": "normalize", "mean": list(splits.mean), "std": list(splits.std)},
        ],
        "output": {"shape": ["batch", splits.num_classes], "kind": "logits",
                   "meaning": "argmax over dim 1 is the index into class_names"},
    }


def eval_transform(data, splits: Splits) -> list[dict[str, Any]]:
    """The resize (and crop) the val split is evaluated with: in-memory datasets are resized whole
    to the input size when built (``registry.resize_images``), file-backed ones per image."""
    size = [splits.image_size, splits.image_size]
    if splits.in_memory:
        return [{"op": "resize", "size": size, "interpolation": "bilinear", "antialias": True}]
    return [{"op": "resize", "shorter_side": int(round(data.image_size / EVAL_RESIZE_RATIO)),
             "interpolation": "bilinear", "antialias": True},
            {"op": "center_crop", "size": size}]
