"""prunetune's own small models, registered by name like torchvision's.

They are the tiny stand-ins tests and quick demos use: ``tiny_mobilenet`` has inverted
residual blocks (expand 1x1 -> depthwise -> squeeze-excitation -> project) so it has the
structure the ``expand`` scope looks for; ``tiny_resnet`` has basic blocks; ``tiny_cnn``
is a plain conv stack.
"""

from __future__ import annotations

import torch
from torch import nn

from prunetune.registry import MODELS



def _conv_bn_act(inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1, act=nn.ReLU):
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
        act(inplace=True),
    )


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(scale))))


class InvertedResidual(nn.Module):
    def __init__(self, inputs: int, outputs: int, expand: int, stride: int) -> None:
        super().__init__()
        self.expand = _conv_bn_act(inputs, expand, 1, act=nn.Hardswish)
        self.depthwise = _conv_bn_act(expand, expand, 3, stride, groups=expand, act=nn.Hardswish)
        self.se = SqueezeExcitation(expand, max(8, expand // 4))
        self.project = nn.Sequential(nn.Conv2d(expand, outputs, 1, bias=False), nn.BatchNorm2d(outputs))
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.residual else out


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_act(inputs, outputs, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False), nn.BatchNorm2d(outputs))
        self.shortcut = (
            nn.Identity()
            if stride == 1 and inputs == outputs
            else nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def _classifier(features: int, hidden: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(features, hidden), nn.Hardswish(), nn.Linear(hidden, num_classes)
    )


@MODELS.register("tiny_mobilenet")
def tiny_mobilenet(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    """Inverted residual blocks with squeeze-excitation (has an expand scope)."""
    w = width
    return nn.Sequential(
        _conv_bn_act(in_channels, w, 3, 2, act=nn.Hardswish),
        InvertedResidual(w, w, 3 * w, 1),
        InvertedResidual(w, 2 * w, 4 * w, 2),
        InvertedResidual(2 * w, 2 * w, 6 * w, 1),
        InvertedResidual(2 * w, 3 * w, 6 * w, 2),
        _conv_bn_act(3 * w, 6 * w, 1, act=nn.Hardswish),
        _classifier(6 * w, 8 * w, num_classes),
    )


@MODELS.register("tiny_resnet")
def tiny_resnet(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    """Basic residual blocks."""
    w = width
    return nn.Sequential(
        _conv_bn_act(in_channels, w, 3, 1),
        BasicBlock(w, w, 1),
        BasicBlock(w, 2 * w, 2),
        BasicBlock(2 * w, 4 * w, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * w, num_classes),
    )


@MODELS.register("tiny_cnn")
def tiny_cnn(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Module:
    """A plain conv stack."""
    w = width
    return nn.Sequential(
        _conv_bn_act(in_channels, w),
        _conv_bn_act(w, 2 * w, stride=2),
        _conv_bn_act(2 * w, 4 * w, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * w, num_classes),
    )
