"""A run's files: optimizer state beside the weights, `last`/`best` links to the files the
committed state names, the log and the curves."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from msinet.imaging.files import written_whole


def save_optimizer(opt: torch.optim.Optimizer, names: dict[int, str], path: Path) -> None:
    tensors = {}
    for p, state in opt.state.items():
        for k, v in state.items():
            tensors[f"{names[id(p)]}/{k}"] = v.detach().cpu().clone() if torch.is_tensor(v) else v
    with written_whole(path) as tmp:
        save_file({k: v for k, v in tensors.items() if torch.is_tensor(v)}, str(tmp))


def load_optimizer(opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter], path: Path):
    tensors = load_file(str(path))
    for key, value in tensors.items():
        name, _, k = key.rpartition("/")
        param = params[name]  # Adam's step counts stay on the CPU, its moments go with the weights
        opt.state[param][k] = value if value.ndim == 0 else value.to(param.device)


def publish(out: Path, state: dict) -> None:
    """`last.safetensors` and `best.safetensors` as links to the files the committed state
    names (what people and scripts open), and the epoch files it no longer names deleted."""
    files = state.get("files")
    if not files:  # a run from before epoch files: its last/best are the files themselves
        return
    for name, target in (("last.safetensors", files["last"]),
                         ("best.safetensors", files["best"])):  # fmt: skip
        if target:
            with written_whole(out / name) as tmp:
                try:
                    os.link(out / target, tmp)
                except OSError:  # no hard links on this file system
                    shutil.copyfile(out / target, tmp)
    keep = set(files.values())
    for p in out.glob("epoch-*.safetensors"):
        if p.name not in keep:
            p.unlink(missing_ok=True)


def write_log(out: Path, history: list[dict[str, float]]) -> None:
    with open(out / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    plot_curves(history, out / "curves.png")


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    axes[0].set_title("KLD loss")
    axes[0].legend()
    axes[1].plot(epochs, [h["NSS"] for h in history], "o-", color="C2")
    axes[1].set_title("validation NSS")
    axes[2].plot(epochs, [h["CC"] for h in history], "o-", label="CC")
    axes[2].plot(epochs, [h["AUC-Judd"] for h in history], "o-", label="AUC-Judd")
    axes[2].set_title("validation CC, AUC-Judd")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
