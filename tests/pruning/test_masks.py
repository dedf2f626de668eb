import copy

import pytest
import torch
import torchvision

from prunetune.config import load_config
from prunetune.models.complexity import measure
from prunetune.models.zoo import tiny_mobilenet
from prunetune.pruning.masks import masked_complexity
from prunetune.pruning.pruner import Pruner
from prunetune.pruning.selection import Selection
from prunetune.pruning.surgery import remove_channels


def _with_live_batchnorm(model):
    """Non-trivial BN statistics and shifts, so a half-zeroed channel would leak a constant."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1, generator=generator)
            module.running_var.uniform_(0.5, 2, generator=generator)
            module.bias.data.uniform_(-1, 1, generator=generator)
    return model.eval()


CASES = {
    "tiny_mobilenet-expand": (lambda: tiny_mobilenet(10, width=8), "expand"),
    "resnet18-all": (lambda: torchvision.models.resnet18(num_classes=10), "all"),
}


@pytest.mark.parametrize("case", CASES)
def test_masked_and_physically_pruned_models_agree_in_outputs_and_macs(case):
    build, scope = CASES[case]
    torch.manual_seed(0)
    model = _with_live_batchnorm(build())
    example = torch.randn(1, 3, 32, 32)
    config = load_config(None, [f"pruning.scope={scope}"]).pruning
    masked, physical = copy.deepcopy(model), copy.deepcopy(model)
    masker = Pruner(masked, example, config)
    masker.step(0.2, mask=True)
    second = masker.step(0.4, mask=True)
    assert second.masked and masker.sparsity() == pytest.approx(0.4, abs=0.01)
    assert measure(masked, 3, 32) == measure(model, 3, 32)  # masks change no shape
    cutter = Pruner(physical, example, config)
    remove_channels(cutter.graph, cutter.groups(), Selection(dict(masker.masks.masked), 0, 0, 0))

    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(masked(x), physical(x), atol=1e-5, rtol=1e-5)
    assert masked_complexity(masked, masker.masks.masked, example, 3, 32) == measure(physical, 3, 32)

    final = masker.step(0.4)  # the last step cuts what the masks hold
    assert not final.masked and not masker.masks
    assert measure(masked, 3, 32) == measure(physical, 3, 32)
    with torch.no_grad():
        torch.testing.assert_close(masked(x), physical(x), atol=1e-5, rtol=1e-5)


def test_masks_survive_training_only_when_reapplied():
    torch.manual_seed(0)
    model = tiny_mobilenet(10, width=8)
    pruner = Pruner(model, torch.randn(1, 3, 32, 32), load_config(None).pruning)
    pruner.step(0.3, mask=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model(torch.randn(8, 3, 32, 32)).logsumexp(1).mean().backward()
    optimizer.step()
    assert pruner.masks.masked_magnitude() > 0  # gradients regrow masked parameters (BN shifts)...
    pruner.masks.apply()
    assert pruner.masks.masked_magnitude() == 0  # ...so the pipeline re-applies after each step


def test_masks_only_grow_across_steps():
    torch.manual_seed(0)
    model = tiny_mobilenet(10, width=8)
    pruner = Pruner(model, torch.randn(1, 3, 32, 32), load_config(None, ["pruning.criterion=random"]).pruning)
    pruner.step(0.2, mask=True)
    first = {n: set(v) for n, v in pruner.masks.masked.items()}
    pruner.step(0.5, mask=True)
    assert all(first[n] <= set(pruner.masks.masked.get(n, ())) for n in first)
