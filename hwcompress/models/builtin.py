"""Small reference networks: a VGG-style and a ResNet-style CNN.

Both end in adaptive average pooling, so they accept any input size from 8×8 (scikit-learn
digits) to 32×32 (CIFAR). The ResNet reuses torchvision's ``BasicBlock`` so that surgery
rules written for torchvision ResNets apply unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn
from torchvision.models.resnet import BasicBlock


class ConvBNAct(nn.Sequential):
    """Convolution, batch-norm and ReLU: one removable/shrinkable unit of a VGG."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)


class SmallVGG(nn.Module):
    """A VGG-style CNN: conv blocks with max-pooling, global pooling and one linear layer.

    Args:
        num_classes: Number of output classes.
        in_channels: Channels of the input image.
        widths: Output channels of each conv block.
        pool_after: Indices of the blocks followed by 2×2 max-pooling.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 32, 64, 64, 128, 128),
        pool_after: Sequence[int] = (1, 3),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(widths):
            layers.append(ConvBNAct(prev, width))
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
            prev = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet of torchvision ``BasicBlock`` stages.

    Args:
        num_classes: Number of output classes.
        in_channels: Channels of the input image.
        widths: Channels of each stage; every stage after the first halves the resolution.
        blocks: Basic blocks per stage.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64),
        blocks: int = 2,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        prev = widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(blocks):
                s = stride if j == 0 else 1
                down = None
                if s != 1 or prev != width:
                    down = nn.Sequential(
                        nn.Conv2d(prev, width, 1, stride=s, bias=False), nn.BatchNorm2d(width)
                    )
                stage.append(BasicBlock(prev, width, stride=s, downsample=down))
                prev = width
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


#: Built-in architectures by name: factory(num_classes, in_channels) -> module.
BUILTIN_MODELS: dict[str, Callable[..., nn.Module]] = {
    "vgg": SmallVGG,
    "resnet": SmallResNet,
}


def build_builtin(name: str, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Builds a built-in architecture with fresh (untrained) weights.

    Raises:
        KeyError: If ``name`` is unknown (callers turn it into a user-facing error).
    """
    return BUILTIN_MODELS[name](num_classes=num_classes, in_channels=in_channels)
