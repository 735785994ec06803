"""Models. Input and output sizes come from the data (``trainer.config.instantiate_with_data``)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """``model=mlp``: flatten, then ``hidden`` ReLU layers, then ``num_outputs`` outputs.

    ``in_shape`` is one sample's shape: ``[C, H, W]`` for images, ``[D]`` for tabular data.
    """

    def __init__(
        self,
        in_shape: list[int],
        num_outputs: int,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU: the unit of both the CNN and the U-Net."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class CNN(nn.Module):
    """``model=cnn``: two conv blocks with max-pooling, global average pooling, a linear head.

    About 70k parameters at ``width=32``: above 98 % on MNIST after a couple of CPU-minutes epochs.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        width: int = 32,
        dropout: float = 0.1,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        del image_size  # global pooling: any image size works
        self.features = nn.Sequential(
            _conv_block(in_channels, width),
            nn.MaxPool2d(2),
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * width, num_outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class UNet(nn.Module):
    """``model=unet``: a small U-Net (Ronneberger et al. 2015) with ``depth`` poolings.

    Output ``[N, num_outputs, H, W]`` logits; H and W must be divisible by ``2**depth``.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        width: int = 16,
        depth: int = 2,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        if image_size is not None and image_size % 2**depth:
            raise ValueError(
                f"unet: image_size {image_size} is not divisible by 2**depth = {2**depth}"
            )
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_conv_block(in_channels, widths[0])])
        self.down.extend(_conv_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(
            _conv_block(2 * widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_outputs, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


class EmbedCNN(CNN):
    """``model=embed_cnn``: the CNN with an L2-normalised ``num_outputs``-d embedding as output."""

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(super().forward(x), dim=1)


class BoxCNN(nn.Module):
    """``model=box_cnn``: the CNN's features, a 4x4 spatial pooling (where the box is matters, so
    no global pooling) and a head predicting one box ``(x1, y1, x2, y2)`` in image units [0, 1].

    The head predicts centre and size through sigmoids, so every predicted box is valid
    (x2 > x1, y2 > y1) from the first step on: box losses reject inverted boxes.
    """

    def __init__(
        self, in_channels: int, width: int = 32, dropout: float = 0.0, image_size: int | None = None
    ) -> None:
        super().__init__()
        del image_size  # the adaptive pooling fixes the head's input size
        self.features = CNN(in_channels, 4, width).features
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * width * 16, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 4),
        )

    def forward(self, x: Tensor) -> Tensor:
        centre, size = self.head(self.features(x)).sigmoid().chunk(2, dim=1)
        return torch.cat([centre - size / 2, centre + size / 2], dim=1)


class ResidualUNet(UNet):
    """``model=denoise_unet``: the U-Net predicting a correction added to its input (the clean
    image is the noisy one minus the noise, which is what the network learns)."""

    def __init__(
        self, in_channels: int, width: int = 16, depth: int = 2, image_size: int | None = None
    ) -> None:
        super().__init__(in_channels, in_channels, width, depth, image_size)

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)
