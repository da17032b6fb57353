"""MSI-Net's architecture, written once and torch-free.

The torch model (model/net.py), the ONNX graph (weights/onnx_graph.py), the official-weights
importer (weights/official.py) and the weights metadata (weights/store.py) all read this
module: the configuration, every convolution with its shape, dilation and activation, and the
official TF variable names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InputOrder = Literal["bgr", "rgb"]


@dataclass(frozen=True)
class MSINetConfig:
    # Channel order the encoder's first layer expects. The model is always fed RGB; "bgr" flips it
    # (Caffe/Keras VGG16 weights, our own trained models), "rgb" does not (the official MSI-Net
    # graph subtracts the BGR means from RGB input without flipping).
    input_order: InputOrder = "bgr"
    # Subtracted from the channels in the order given by `input_order`; no division by a std.
    mean: tuple[float, float, float] = (103.939, 116.779, 123.68)
    # Dilation rates of the three 3x3 ASPP branches.
    aspp_rates: tuple[int, int, int] = (4, 8, 12)
    # Channels of every ASPP branch and of its output projection.
    aspp_channels: int = 256
    # Output channels of the three upsampling blocks of the decoder.
    decoder_channels: tuple[int, int, int] = (128, 64, 32)
    # Added to the range in the per-image min-max normalisation of the output.
    eps: float = 1e-7


# VGG16's convolutions as (block, input channels, output channels, convolutions). Blocks 1-3 end
# in 2x2 max pooling with stride 2; pool4 and pool5 have stride 1 ("SAME" padding) and conv5 is
# dilated by 2 instead, so the encoder stays at 1/8 resolution.
VGG_BLOCKS = ((1, 3, 64, 2), (2, 64, 128, 2), (3, 128, 256, 3), (4, 256, 512, 3), (5, 512, 512, 3))
CONV5_DILATION = 2
# pool3 + pool4 + pool5, concatenated: the encoder's output channels.
ENCODER_CHANNELS = 256 + 512 + 512


@dataclass(frozen=True)
class Conv:
    """One convolution: its state-dict key prefix and what it computes."""

    key: str  # e.g. "encoder.conv5.conv5_1", "aspp.conv1_2", "decoder.conv4"
    in_ch: int
    out_ch: int
    kernel: int  # square, TF "same" padding
    dilation: int = 1
    relu: bool = True

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        k = self.kernel
        return {
            f"{self.key}.weight": (self.out_ch, self.in_ch, k, k),
            f"{self.key}.bias": (self.out_ch,),
        }


def encoder_convs() -> list[list[Conv]]:
    """The encoder's convolutions, one list per VGG block."""
    blocks = []
    for b, in_ch, out_ch, n in VGG_BLOCKS:
        dilation = CONV5_DILATION if b == 5 else 1
        ins = [in_ch] + [out_ch] * (n - 1)
        blocks.append([Conv(f"encoder.conv{b}.conv{b}_{i + 1}", c, out_ch, 3, dilation)
                       for i, c in enumerate(ins)])  # fmt: skip
    return blocks


def aspp_convs(c: MSINetConfig) -> dict[str, Conv]:
    """ASPP: a 1x1 branch, three dilated 3x3 branches, a 1x1 on the global mean (conv1_5), and a
    1x1 projection of the five concatenated branches (conv2)."""
    ch = c.aspp_channels
    convs = {"conv1_1": Conv("aspp.conv1_1", ENCODER_CHANNELS, ch, 1)}
    for i, rate in zip((2, 3, 4), c.aspp_rates, strict=True):
        convs[f"conv1_{i}"] = Conv(f"aspp.conv1_{i}", ENCODER_CHANNELS, ch, 3, rate)
    convs["conv1_5"] = Conv("aspp.conv1_5", ENCODER_CHANNELS, ch, 1)
    convs["conv2"] = Conv("aspp.conv2", 5 * ch, ch, 1)
    return convs


def decoder_convs(c: MSINetConfig) -> list[Conv]:
    """Three 3x3 convolutions with ReLU, each after a bilinear x2; then one to a single channel."""
    chans = (c.aspp_channels, *c.decoder_channels)
    convs = [Conv(f"decoder.conv{i + 1}", chans[i], chans[i + 1], 3) for i in range(3)]
    return [*convs, Conv("decoder.conv4", chans[-1], 1, 3, relu=False)]


def all_convs(c: MSINetConfig | None = None) -> list[Conv]:
    c = c or MSINetConfig()
    return [*(x for block in encoder_convs() for x in block), *aspp_convs(c).values(),
            *decoder_convs(c)]  # fmt: skip


def parameter_shapes(c: MSINetConfig | None = None) -> dict[str, tuple[int, ...]]:
    """Every parameter's state-dict key -> shape (OIHW kernels)."""
    return {k: s for conv in all_convs(c) for k, s in conv.shapes.items()}


def official_name(key: str) -> str:
    """Our state-dict key -> the official TF variable name.

    `encoder.conv1.conv1_1.weight` -> `conv1/conv1_1/kernel`,
    `aspp.conv1_5.bias` -> `aspp/conv1_5/bias`, `decoder.conv4.weight` -> `decoder/conv4/kernel`.
    """
    module, _, param = key.rpartition(".")
    scope = module.removeprefix("encoder.").replace(".", "/")
    return f"{scope}/{'kernel' if param == 'weight' else 'bias'}"
