"""Training's typed configuration with the paper's defaults, importable without torch.

Each field's help text lives here (`help`), and `msinet train`'s flags are derived from these
fields (msinet.cli.common.add_flags): one place for every name, default and description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from msinet.data import DATASETS
from msinet.engine.device import DEVICE_HELP


def opt(default, help: str, **extra):
    """A field with its help text (and, for the CLI, `required` or `choices`)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    data: list[str] = field(
        default_factory=list,
        metadata={
            "help": "NAME:DIR, a dataset to train on, repeatable (e.g. --data "
            "osie:../shared/data/osie --data mit1003:../shared/data/mit1003)"
        },
    )
    sample_weight: list[str] = field(default_factory=list, metadata={
        "help": "NAME=W: draw W x that dataset's training images per epoch (default 1 each: "
                "every image once)"})  # fmt: skip
    dataset: str = opt(
        "osie",
        "with --root: the one dataset to train on",
        choices=DATASETS,
    )
    root: str = opt("", "with --dataset: that dataset's folder (or use --data)")
    out: str = opt("runs/osie", "run folder (checkpoints, logs, curves)")
    init: str = opt("", "vgg16:PATH (ImageNet VGG16 conv weights, BGR) or an msinet weights "
                    "file to fine-tune", required=True)  # fmt: skip
    phase: Literal["head", "partial", "full"] = opt(
        "head", "head: frozen encoder, its features cached; partial: blocks 1-3 frozen, pool3 "
        "cached, conv4/conv5 + ASPP + decoder train; full: end to end")  # fmt: skip
    train_from: Literal["conv4", "conv5"] = opt("conv4", "partial: the first encoder block "
                                                 "that trains")  # fmt: skip
    encoder_lr_factor: float = opt(0.1, "partial/full: the encoder's learning rate is lr x this")
    cache: str = opt("", "folder for the cached activations, shareable by runs (default: "
                     "RUN/cache)")  # fmt: skip
    size: str = opt("", "model input HxW or preset (default: the dataset's official size)")
    epochs: int = opt(10, "epochs")
    batch_size: int = opt(1, "images per step (the official value: 1)")
    lr: float = opt(1e-5, "learning rate (the paper's Adam: 1e-5)")
    lr_decay: float = opt(1.0, "multiply the learning rate by this after every epoch")
    weight_decay: float = opt(0.0, "decoupled weight decay (AdamW); 0 is plain Adam")
    flip: bool = opt(True, "random horizontal flips (the head phase caches both orientations)")
    cc_weight: float = opt(0.0, "add cc_weight * (1 - CC) to the KLD loss")
    nss_weight: float = opt(0.0, "add nss_weight * (-NSS) to the KLD loss")
    patience: int = opt(0, "stop after this many epochs without a better validation loss "
                        "(0: never)")  # fmt: skip
    bf16: bool = opt(False, "bfloat16 autocast for the trained layers (AVX-512 BF16 CPUs)")
    seed: int = opt(0, "random seed (order, flips, initialisation)")
    limit_train: int = opt(0, "use only the first N training images (0: all)")
    limit_val: int = opt(0, "use only the first N validation images (0: all)")
    eval_sigma: float = opt(0.0, "density sigma in px for validation metrics (0: the dataset's)")
    threads: int = opt(0, "torch threads (0: torch's default)")
    device: str = opt("cpu", DEVICE_HELP)
    version: str = opt("1", "version recorded in the saved weights")
    extra: dict[str, str] = field(default_factory=dict, metadata={
        "help": "extra metadata recorded in the saved weights", "cli": False})  # fmt: skip
