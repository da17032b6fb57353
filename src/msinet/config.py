"""Typed configuration with the paper's defaults, importable without torch."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    dataset: str = "osie"
    root: str = ""
    out: str = "runs/osie"
    # "vgg16:PATH" (ImageNet VGG16 conv weights, BGR) or an msinet weights file to fine-tune.
    init: str = ""
    phase: str = "head"  # "head": frozen, cached encoder; "full": end to end
    size: str = ""  # model input "HxW" or preset; default: the dataset's official size
    epochs: int = 10
    batch_size: int = 1  # the official value
    lr: float = 1e-5  # the paper's Adam learning rate
    lr_decay: float = 1.0  # multiply the learning rate by this after every epoch
    weight_decay: float = 0.0  # decoupled (AdamW); 0 is plain Adam
    flip: bool = True  # random horizontal flips (the head phase caches both orientations)
    cc_weight: float = 0.0  # add cc_weight * (1 - CC) to the KLD
    nss_weight: float = 0.0  # add nss_weight * (-NSS) to the KLD
    patience: int = 0  # stop after this many epochs without a better validation loss (0: never)
    bf16: bool = False  # bfloat16 autocast for the trained layers (AVX-512 BF16 CPUs)
    seed: int = 0
    limit_train: int = 0  # use only the first N training images (0: all); for tests
    limit_val: int = 0
    eval_sigma: float = 0.0  # density sigma for validation metrics (0: the dataset's)
    threads: int = 0
    version: str = "1"
    extra: dict[str, str] = field(default_factory=dict)
