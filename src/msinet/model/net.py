"""MSI-Net (Kroner et al., Neural Networks 2020): a VGG16 encoder, an ASPP module and a decoder.

Every layer mirrors the official TensorFlow 1 graph (alexanderkroner/saliency, model.py), so that
its weights map one-to-one onto ours (see `official_name`) and give the same output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msinet.model.arch import (
    Conv,
    MSINetConfig,
    aspp_convs,
    decoder_convs,
    encoder_convs,
    official_name,
)

__all__ = ["MSINet", "MSINetConfig", "count_parameters", "init_weights", "official_name"]


def conv2d(c: Conv) -> nn.Conv2d:
    """A convolution of the spec with TF "same" padding (symmetric for stride 1, odd kernels)."""
    pad = c.dilation * (c.kernel - 1) // 2
    return nn.Conv2d(c.in_ch, c.out_ch, c.kernel, padding=pad, dilation=c.dilation)


def max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling, stride 1, TF "SAME" padding: one extra row/column at the bottom/right.

    Replicating the border gives the same maximum as TF's -inf padding, without infinities.
    """
    return F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, stride=1)


def upsample2x_tf(x: torch.Tensor) -> torch.Tensor:
    """TF1 `resize_bilinear` to twice the size (align_corners=False, half_pixel_centers=False).

    Output pixel i samples input position i/2 ("asymmetric" in ONNX terms): even pixels copy the
    input, odd pixels average two neighbours, and the last one repeats the border. PyTorch's own
    bilinear mode uses half-pixel centres, which differs by ~2e-2 on the official weights.
    """
    b, c, h, w = x.shape
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")  # (B, C, H+1, W+1)
    rows = torch.stack((x[:, :, :-1], 0.5 * (x[:, :, :-1] + x[:, :, 1:])), dim=3)
    x = rows.reshape(b, c, 2 * h, w + 1)
    cols = torch.stack((x[..., :-1], 0.5 * (x[..., :-1] + x[..., 1:])), dim=4)
    return cols.reshape(b, c, 2 * h, 2 * w)


class Encoder(nn.Module):
    """VGG16's 13 convolutions; pool4/pool5 keep the resolution and conv5 is dilated instead."""

    def __init__(self) -> None:
        super().__init__()
        for b, convs in enumerate(encoder_convs(), start=1):
            layers = {c.key.rpartition(".")[2]: conv2d(c) for c in convs}  # conv{b}_{i}
            self.add_module(f"conv{b}", nn.ModuleDict(layers))

    def _block(self, b: int, x: torch.Tensor) -> torch.Tensor:
        for conv in self.get_submodule(f"conv{b}").values():
            x = F.relu(conv(x))
        return x

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Blocks 1-3, down to 1/8 resolution: what a partial fine-tune caches."""
        x = F.max_pool2d(self._block(1, x), 2)  # (B, 64, H/2, W/2)
        x = F.max_pool2d(self._block(2, x), 2)  # (B, 128, H/4, W/4)
        return F.max_pool2d(self._block(3, x), 2)  # (B, 256, H/8, W/8)

    def forward_top(self, pool3: torch.Tensor) -> torch.Tensor:
        pool4 = max_pool_same(self._block(4, pool3))  # (B, 512, H/8, W/8)
        pool5 = max_pool_same(self._block(5, pool4))  # (B, 512, H/8, W/8)
        return torch.cat((pool3, pool4, pool5), dim=1)  # (B, 1280, H/8, W/8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_top(self.forward_stem(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: four dilated views and the global scene context."""

    def __init__(self, config: MSINetConfig) -> None:
        super().__init__()
        for name, c in aspp_convs(config).items():  # conv1_1 .. conv1_5, conv2
            self.add_module(name, conv2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        context = F.relu(self.conv1_5(x.mean(dim=(2, 3), keepdim=True)))  # (B, 256, 1, 1)
        branches = (
            F.relu(self.conv1_1(x)),  # 1x1
            F.relu(self.conv1_2(x)),  # 3x3, dilation 4
            F.relu(self.conv1_3(x)),  # 3x3, dilation 8
            F.relu(self.conv1_4(x)),  # 3x3, dilation 12
            context.expand(-1, -1, h, w),  # bilinear resize of a 1x1 map is a broadcast
        )
        return F.relu(self.conv2(torch.cat(branches, dim=1)))  # (B, 256, H/8, W/8)


class Decoder(nn.Module):
    """Three (bilinear x2, 3x3 conv + ReLU) blocks, then a 3x3 conv to one channel, no ReLU."""

    def __init__(self, config: MSINetConfig) -> None:
        super().__init__()
        for c in decoder_convs(config):  # conv1 .. conv4
            self.add_module(c.key.rpartition(".")[2], conv2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(upsample2x_tf(x)))  # (B, 128, H/4, W/4)
        x = F.relu(self.conv2(upsample2x_tf(x)))  # (B, 64, H/2, W/2)
        x = F.relu(self.conv3(upsample2x_tf(x)))  # (B, 32, H, W)
        return self.conv4(x)  # (B, 1, H, W)


class MSINet(nn.Module):
    """Takes RGB images in 0..255, (B, 3, H, W) with H, W multiples of 8; returns (B, 1, H, W)."""

    def __init__(self, config: MSINetConfig | None = None) -> None:
        super().__init__()
        self.config = config or MSINetConfig()
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, 3, 1, 1), False)
        self.encoder = Encoder()
        self.aspp = ASPP(self.config)
        self.decoder = Decoder(self.config)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder.forward_top(self.forward_stem(images))  # (B, 1280, H/8, W/8)

    def forward_stem(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if images.dim() != 4 or images.shape[1] != 3 or h % 8 or w % 8:
            raise ValueError(
                f"expected images of shape (B, 3, H, W) with H and W multiples of 8, "
                f"got {tuple(images.shape)}"
            )
        if self.config.input_order == "bgr":
            images = images.flip(1)
        return self.encoder.forward_stem(images - self.mean)  # (B, 256, H/8, W/8)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The raw (unnormalised) saliency logits: what the loss and density models need."""
        return self.decoder(self.aspp(features))  # (B, 1, H, W)

    def forward_raw(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return normalize_minmax(self.forward_raw(images), self.config.eps)


def normalize_minmax(maps: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-image (x - min) / (max - min + eps), as the official graph's output node."""
    maps = maps - maps.amin(dim=(1, 2, 3), keepdim=True)
    return maps / (maps.amax(dim=(1, 2, 3), keepdim=True) + eps)


def init_weights(model: MSINet) -> None:
    """Glorot-uniform kernels and zero biases: TF's `tf.layers.conv2d` defaults."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
