"""Build a model by name and load a local checkpoint into it.

Names resolve in this order: ``package.module:callable``; an explicit ``torchvision:`` or
``timm:`` prefix; a prunetune model (``models/zoo.py``); a torchvision classification
builder; a timm model. Weights are never downloaded (``pretrained`` is not offered); start
from a local ``model.checkpoint`` instead.
"""

from __future__ import annotations

import difflib
import inspect
import pickle
from pathlib import Path

import torch
from torch import nn

from prunetune.errors import ModelError, UnknownModelError
from prunetune.models.zoo import MODELS
from prunetune.registry import import_callable

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _timm_has(name: str) -> bool:
    import timm

    return timm.is_model(name)


def resolve(name: str) -> tuple[str, str]:
    """Return (source, builder name) for ``name``; raise ``ModelError`` if unknown."""
    if ":" in name:
        prefix, _, rest = name.partition(":")
        if prefix in ("torchvision", "timm"):
            known = rest in _torchvision_names() if prefix == "torchvision" else _timm_has(rest)
            if not known:
                raise _unknown(rest, f"no {prefix} model {rest!r}")
            return prefix, rest
        return "callable", name
    if name in MODELS:
        return "prunetune", name
    if name in _torchvision_names():
        return "torchvision", name
    if _timm_has(name):
        return "timm", name
    raise _unknown(name, f"unknown model {name!r}")


def _unknown(name: str, what: str) -> UnknownModelError:
    candidates = MODELS.names() + _torchvision_names()
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownModelError(
        f"model.name: {what}{hint} Known: prunetune models ({', '.join(MODELS.names())}), torchvision "
        "classification builders (torchvision.models.list_models()), timm models (timm.list_models()), "
        "or 'package.module:callable'"
    )


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """torchvision builders take no channel count: swap the 3-channel stem for one."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                setattr(parent, child_name, nn.Conv2d(
                    in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                    child.dilation, child.groups, child.bias is not None,
                ))
                return
    raise ModelError(f"model.name: found no 3-channel input convolution to adapt to {in_channels} channels")


def build_model(config, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build ``config.name`` (a ``ModelConfig``) and load ``config.checkpoint`` if given."""
    num_classes = config.num_classes or num_classes
    source, name = resolve(config.name)
    kwargs = dict(config.kwargs)
    try:
        if source == "prunetune":
            model = MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, **kwargs)
        elif source == "torchvision":
            import torchvision

            model = torchvision.models.get_model(name, num_classes=num_classes, **kwargs)
            if in_channels != 3:
                _replace_first_conv(model, in_channels)
        elif source == "timm":
            import timm

            model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
        else:
            builder = import_callable(name, "model.name", ModelError)
            accepted = inspect.signature(builder).parameters
            extra = {k: v for k, v in (("num_classes", num_classes), ("in_channels", in_channels)) if k in accepted}
            model = builder(**extra, **kwargs)
    except (TypeError, ValueError) as error:
        raise ModelError(f"model.kwargs: building {config.name!r} failed: {error}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model.name: {config.name!r} returned {type(model).__name__}, not a torch nn.Module")
    if config.checkpoint is not None:
        model = load_checkpoint(model, config.checkpoint, config.checkpoint_format)
    return model


def load_checkpoint(model: nn.Module, path: str, expected: str = "auto") -> nn.Module:
    """Load ``path`` into ``model``: a state_dict (bare or under a usual key) or a whole module.

    ``expected`` is "state_dict", "module" or "auto". A whole module is unpickled with
    ``weights_only=False``, which runs code from the file: only with "module", the user's word
    that the file is trusted; "auto" reads tensors only (``weights_only=True``) and refuses the rest.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError(f"model.checkpoint: {path!r} does not exist")
    content = _read(file, allow_code=expected == "module")
    if isinstance(content, nn.Module):
        if expected == "state_dict":
            raise ModelError(
                f"model.checkpoint: {path!r} holds a whole nn.Module, but a state_dict was expected "
                "(set model.checkpoint_format=module to load it as a module)"
            )
        return content
    if expected == "module":
        raise ModelError(
            f"model.checkpoint: {path!r} holds a {type(content).__name__}, but a whole nn.Module was expected "
            "(set model.checkpoint_format=state_dict or auto to load weights into model.name)"
        )
    state = _find_state_dict(content)
    if state is None:
        raise ModelError(
            f"model.checkpoint: {path!r} holds a {type(content).__name__} that is neither a state_dict "
            f"(name -> tensor, bare or under {', '.join(STATE_DICT_KEYS)}) nor a whole nn.Module"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        summary = str(error).split("\n\t")[1:3]
        raise ModelError(
            f"model.checkpoint: {path!r} is a state_dict that does not fit model "
            f"{type(model).__name__}: {' '.join(s.strip() for s in summary)[:400]}"
        ) from None
    return model


def _read(file: Path, allow_code: bool):
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch 2.11's weights-only loader raises one error type for a pickle that needs code (it
        # names a GLOBAL, a reduce or an allowlist) and for bytes that are no pickle ("Unsupported operand").
        if not any(word in str(error) for word in ("GLOBAL", "allowlisted", "reduce")):
            reason = str(error).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
            raise ModelError(f"model.checkpoint: {str(file)!r} is not a torch checkpoint ({reason})") from None
        if not allow_code:
            raise ModelError(
                f"model.checkpoint: {str(file)!r} is not a plain state_dict (it needs code to unpickle); "
                "set model.checkpoint_format=module if it is a whole saved module you trust (unpickling runs "
                "the file's code)"
            ) from None
    except (RuntimeError, EOFError, ValueError) as error:
        raise ModelError(f"model.checkpoint: {str(file)!r} is not a torch checkpoint ({error})") from None
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as error:  # any unpickling failure of a user file is a bad checkpoint
        raise ModelError(f"model.checkpoint: {str(file)!r} is not a torch checkpoint: neither a state_dict nor a "
                         f"loadable whole module ({error})") from None


def _find_state_dict(content) -> dict[str, torch.Tensor] | None:
    if isinstance(content, dict):
        if content and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items()):
            return content
        for key in STATE_DICT_KEYS:
            nested = _find_state_dict(content.get(key))
            if nested is not None:
                return nested
    return None
