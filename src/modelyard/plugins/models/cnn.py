"""``cnn``: a small ResNet-style convolutional network with batch norm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from modelyard.plugins.models import register_model
from modelyard.plugins.models.init import InitScheme, init_weights


class _ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn plus a (projected) shortcut; halves H and W when ``stride`` is 2."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem conv, one residual block per entry of ``channels`` (each after the first halves
    the spatial size), global average pooling, dropout and a linear head."""

    def __init__(self, *, in_channels: int, num_outputs: int, channels: Sequence[int], dropout: float) -> None:
        super().__init__()
        first = int(channels[0])
        self.stem = nn.Sequential(nn.Conv2d(in_channels, first, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(first), nn.ReLU())
        blocks = []
        width = first
        for i, ch in enumerate(channels):
            blocks.append(_ResidualBlock(width, int(ch), stride=1 if i == 0 else 2))
            width = int(ch)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))          # (B, C, H', W')
        x = x.mean(dim=(2, 3), keepdim=True)   # global average pool -> (B, C, 1, 1)
        return self.head(x)                    # (B, num_outputs)


@register_model("cnn", modality="image")
def cnn(*, in_channels: int, image_size: Sequence[int], num_outputs: int,
        channels: Sequence[int] = (32, 64), dropout: float = 0.1, init: InitScheme = "default") -> nn.Module:
    """A small ResNet for images of any size (global pooling makes ``image_size`` free).

    Args:
        in_channels: C of the (B, C, H, W) input.
        image_size: (H, W); recorded for the spec, not needed by the architecture.
        num_outputs: number of classes.
        channels: width of each residual stage.
        dropout: dropout before the head.
        init: weight initialisation (``default`` keeps PyTorch's; xavier, kaiming, normal).
    """
    if not channels:
        raise ValueError("channels must name at least one stage width")
    model = SmallResNet(in_channels=in_channels, num_outputs=num_outputs, channels=channels, dropout=dropout)
    return init_weights(model, init)
