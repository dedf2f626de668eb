import pytest
import torch
import torch_pruning as tp
from torch import nn

from prunetune.torch_tools import (evaluation_mode, forward_hooks, handler_side, is_depthwise, plain_indices,
                                   training_flags_restored)


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def _hook_count(module: nn.Module) -> int:
    return len(module._forward_hooks) + len(module._forward_pre_hooks)


def test_forward_hooks_fire_inside_and_are_removed_when_the_body_raises():
    net = _net()
    seen = []
    with pytest.raises(RuntimeError, match="body failed"):
        with forward_hooks([(net[0], lambda m, i, o: seen.append("after"))],
                           pre_hooks=[(net[3], lambda m, i: seen.append("before"))]):
            net(torch.zeros(1, 3, 4, 4))
            raise RuntimeError("body failed")
    assert seen == ["after", "before"]
    assert _hook_count(net[0]) == 0 and _hook_count(net[3]) == 0


def test_forward_hooks_removes_the_ones_registered_when_a_later_registration_fails():
    net = _net()
    with pytest.raises(AttributeError):
        with forward_hooks([(net[0], lambda m, i, o: None), ("not a module", lambda m, i, o: None)]):
            pass
    assert _hook_count(net[0]) == 0


def test_evaluation_mode_switches_every_module_to_eval_and_restores_each_flag():
    net = _net().train()
    net[1].eval()  # a norm deliberately frozen inside a training model
    with evaluation_mode(net):
        assert not any(module.training for module in net.modules())
    assert [module.training for module in net.modules()] == [True, True, False, True, True]


def test_evaluation_mode_restores_the_flags_when_the_body_raises():
    net = _net().train()
    with pytest.raises(ValueError):
        with evaluation_mode(net):
            raise ValueError
    assert all(module.training for module in net.modules())


def test_training_flags_restored_calls_the_models_own_train_override():
    class FrozenNorms(nn.Sequential):
        def train(self, mode: bool = True):
            super().train(mode)
            self.calls.append(mode)
            return self

    net = FrozenNorms(nn.Linear(2, 2))
    net.calls = []
    with training_flags_restored(net):
        net.eval()
    assert net.calls == [False, True] and net.training


def test_is_depthwise_only_for_one_group_per_input_channel():
    assert is_depthwise(nn.Conv2d(8, 8, 3, groups=8))
    assert is_depthwise(nn.Conv2d(8, 16, 3, groups=8))
    assert not is_depthwise(nn.Conv2d(8, 8, 3, groups=4))
    assert not is_depthwise(nn.Conv2d(1, 4, 3, groups=1))
    assert not is_depthwise(nn.Linear(8, 8))


def test_handler_side_and_plain_indices_read_a_torch_pruning_group():
    net = _net()
    graph = tp.DependencyGraph().build_dependency(net, example_inputs=torch.zeros(1, 3, 4, 4))
    group = graph.get_pruning_group(net[0], tp.prune_conv_out_channels, [1, 3])
    sides = {dep.target.module: handler_side(dep.handler) for dep, _ in group}
    assert sides[net[0]] == "out" and sides[net[3]] == "in"
    assert all(plain_indices(idxs) == [1, 3] for _, idxs in group)
    assert handler_side(print) is None
