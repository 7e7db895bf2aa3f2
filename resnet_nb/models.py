"""Models: the paper's CIFAR ResNets (6n+2), plain CNNs of the same shape, torchvision adapters.

Attribute names follow akamaster's ``resnet.py`` (``conv1``, ``bn1``, ``layer1..3``,
``linear``; blocks with ``conv1, bn1, conv2, bn2, shortcut``), so published CIFAR
checkpoints map onto these modules by the order of their ``state_dict``.

Training half. ``ModelSpec`` (the model keys, families and labels) lives in :mod:`resnet_nb.vocab`
and is re-exported here; this module builds the nets it names.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .vocab import (NUM_CLASSES, TORCHVISION_DEPTHS, Arch, ModelSpec, Shortcut, Stem,  # noqa: F401 - re-exported
                    blocks_per_stage, model_table, standard_specs)



class ZeroPadShortcut(nn.Module):
    """Option A: identity that subsamples by 2 and zero-pads the new channels.

    A module (not a lambda) so that whole-model pickling works; it has no parameters.
    """

    def __init__(self, pad_channels: int) -> None:
        super().__init__()
        self.pad_channels = pad_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad_channels
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))

    def extra_repr(self) -> str:
        return f"pad_channels={self.pad_channels}"


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; with ``residual`` the input is added before the last ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: Shortcut | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = shortcut is not None
        self.shortcut: nn.Module = nn.Sequential()  # identity, no parameters
        if shortcut is not None and (stride != 1 or in_planes != planes):
            if shortcut == "A":
                # paper: "extra zero entries padded for increasing dimensions"
                self.shortcut = ZeroPadShortcut((planes - in_planes) // 2)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    """Paper section 4.2: 3x3 conv(16), 3 stages of n blocks (16/32/64 filters), GAP, linear."""

    def __init__(self, depth: int, shortcut: Shortcut | None, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        n = blocks_per_stage(depth)
        if shortcut not in ("A", "B", None):
            raise ValueError(f"shortcut must be 'A', 'B' or None (plain net), got {shortcut!r}")
        self.depth = depth
        self.shortcut_option = shortcut
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_planes = 16
        self.layer1 = self._make_stage(16, n, 1, shortcut)
        self.layer2 = self._make_stage(32, n, 2, shortcut)
        self.layer3 = self._make_stage(64, n, 2, shortcut)
        self.linear = nn.Linear(64, num_classes)

    def _make_stage(self, planes: int, n: int, stride: int, shortcut: Shortcut | None) -> nn.Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(BasicBlock(self.in_planes, planes, s, shortcut))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)




def cifar_resnet(depth: int, shortcut: Shortcut | None = "A") -> CifarResNet:
    """The paper's CIFAR network; ``shortcut=None`` gives the plain CNN of the same depth."""
    return CifarResNet(depth, shortcut)


def torchvision_resnet(depth: int = 18, stem: Stem = "imagenet") -> nn.Module:
    """torchvision's ResNet-18/34 with 10 classes.

    ``stem="imagenet"`` is the model as shipped (7x7/2 conv + 3x3/2 max-pool: a 32x32
    image is 8x8 before the first block). ``stem="cifar"`` swaps in a 3x3/1 conv and no
    max-pool, so the first stage sees the full 32x32 map.
    """
    import torchvision

    if depth not in TORCHVISION_DEPTHS:
        raise ValueError(f"torchvision depth must be one of {TORCHVISION_DEPTHS}, got {depth!r}")
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=NUM_CLASSES)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model




def build_model(spec: ModelSpec) -> nn.Module:
    if spec.arch == "torchvision":
        assert spec.stem is not None
        return torchvision_resnet(spec.depth, spec.stem)
    return cifar_resnet(spec.depth, spec.shortcut if spec.arch == "resnet" else None)


def he_init(model: nn.Module) -> nn.Module:
    """He (Kaiming normal, fan-out) init of convs and linears, as in the paper (ref. [13])."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_weight_layers(model: nn.Module) -> int:
    """Convs + linears on the main path (projection shortcuts are not counted, as in the paper)."""
    return sum(
        1
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and "shortcut" not in name and "downsample" not in name
    )




def count_macs(model: nn.Module, image_size: int = 32) -> int:
    """Multiply-accumulates of the convs and linears for one image (BN, ReLU, pooling, additions not counted)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    forward_probe(model, handles, image_size)
    return total


def forward_probe(model: nn.Module, handles: list[Any], image_size: int) -> None:
    """One eval-mode forward pass of a blank image, for the hooks in ``handles``; then remove them."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        for h in handles:
            h.remove()
