"""Training MSI-Net: the official KLD objective, Adam, seeded and resumable.

Two phases, because end-to-end training costs ~1.5-2 s per image and step on a 2-core CPU:
- `head`: the encoder is frozen and its 1280-channel features are computed once (cached to disk
  beside the run), so only ASPP + decoder train, on the cached features;
- `full`: end to end from images, typically after `head` at a lower learning rate.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from msinet import metrics
from msinet.config import TrainConfig
from msinet.data import Sample, open_dataset
from msinet.files import remove_partials, written_whole
from msinet.image import load_image
from msinet.losses import cc_loss, kld_loss, nss_loss
from msinet.model import MSINet, init_weights, normalize_minmax
from msinet.model_io import init_from_vgg16, load_model, save_model
from msinet.postprocess import map_to_image
from msinet.preprocess import parse_size, preprocess, preprocess_map
from msinet.weights import WeightsMeta


@dataclass
class Arrays:
    images: torch.Tensor  # (N, 3, H, W) float32 preprocessed RGB
    maps: torch.Tensor  # (N, 1, H, W) float32 training targets
    fixations: torch.Tensor  # (N, 1, H, W) bool fixated pixels at model size


def target_map(sample: Sample, sigma: float) -> np.ndarray:
    """A dataset's own saliency map where it ships one, else its fixations blurred by `sigma`."""
    if sample.saliency_map is not None:
        return load_image(sample.saliency_map)[..., 0].astype(np.float32) / 255.0
    return sample.fixations.density(sigma)


def build_arrays(samples: list[Sample], size: tuple[int, int], sigma: float) -> Arrays:
    from tqdm import tqdm

    images, maps, fixations = [], [], []
    for s in tqdm(samples, desc="load", unit="img", leave=False):
        x, _ = preprocess(load_image(s.image), size)
        images.append(x.transpose(2, 0, 1))
        maps.append(preprocess_map(target_map(s, sigma), size)[None])
        fixations.append(preprocess_map(s.fixations.counts(), size)[None] > 0)
    return Arrays(
        torch.from_numpy(np.stack(images)),
        torch.from_numpy(np.stack(maps)),
        torch.from_numpy(np.stack(fixations)),
    )


def with_flips(a: Arrays) -> Arrays:
    """Row 2k is image k, row 2k+1 its mirror."""

    def both(t: torch.Tensor) -> torch.Tensor:
        return torch.stack((t, t.flip(-1)), dim=1).flatten(0, 1)

    return Arrays(both(a.images), both(a.maps), both(a.fixations))


@torch.no_grad()
def encode(model: MSINet, images: torch.Tensor, cache: Path | None, batch: int = 4):
    """Encoder features (N, 1280, H/8, W/8) in float16, read from `cache` when it exists."""
    from tqdm import tqdm

    if cache is not None and cache.is_file():
        return load_file(str(cache))["features"]
    model.eval()
    parts = []
    for i in tqdm(range(0, len(images), batch), desc="encode", unit="batch", leave=False):
        f = model.forward_features(images[i : i + batch])
        parts.append(f.clamp_max(65000).half())
    features = torch.cat(parts).contiguous()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": features}, str(cache))
    return features


def fingerprint(model: MSINet, *parts: object) -> str:
    """Identifies cached features: the encoder's weights and what was encoded."""
    h = hashlib.sha256(repr(parts).encode())
    for v in model.encoder.state_dict().values():
        h.update(v.numpy().tobytes())
    return h.hexdigest()[:16]


# What runs from before epoch files kept (resumed as they are).
LEGACY_FILES = {"last": "last.safetensors", "last_optim": "last-optim.safetensors", "best": ""}


def initial_model(spec: str) -> MSINet:
    if spec.startswith("vgg16:"):
        torch.manual_seed(0)
        model = MSINet()
        init_weights(model)
        init_from_vgg16(model, spec.removeprefix("vgg16:"))
        return model
    if spec:
        return load_model(spec)
    raise ValueError("--init is required: vgg16:PATH or an msinet weights file")


def save_optimizer(opt: torch.optim.Optimizer, names: dict[int, str], path: Path) -> None:
    tensors = {}
    for p, state in opt.state.items():
        for k, v in state.items():
            tensors[f"{names[id(p)]}/{k}"] = v.detach().clone() if torch.is_tensor(v) else v
    with written_whole(path) as tmp:
        save_file({k: v for k, v in tensors.items() if torch.is_tensor(v)}, str(tmp))


def load_optimizer(opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter], path: Path):
    tensors = load_file(str(path))
    for key, value in tensors.items():
        name, _, k = key.rpartition("/")
        opt.state[params[name]][k] = value


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        if config.phase not in ("head", "full"):
            raise ValueError(f"phase must be head or full, got {config.phase!r}")
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out = Path(config.out)
        self.dataset = open_dataset(config.dataset, config.root)
        from msinet.preprocess import SIZE_PRESETS

        self.size = parse_size(config.size or SIZE_PRESETS.get(config.dataset, (240, 320)))
        self.eval_sigma = config.eval_sigma or self.dataset.eval_sigma
        self.train_samples = self.dataset.samples("train")
        self.val_samples = self.dataset.samples("val")
        if config.limit_train:
            self.train_samples = self.train_samples[: config.limit_train]
        if config.limit_val:
            self.val_samples = self.val_samples[: config.limit_val]

    # --- setup -------------------------------------------------------------------------------

    def _model_and_optimizer(self, state: dict | None):
        """The initial model, or the one the committed `state` names (resume)."""
        files = (state or {}).get("files", LEGACY_FILES)
        model = load_model(self.out / files["last"]) if state else initial_model(self.config.init)
        trained = model.parameters() if self.config.phase == "full" else self._head_params(model)
        trained = list(trained)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in trained:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(trained, lr=self.config.lr, weight_decay=self.config.weight_decay)
        if state:
            load_optimizer(opt, dict(model.named_parameters()), self.out / files["last_optim"])
        return model, opt

    @staticmethod
    def _head_params(model: MSINet):
        return [*model.aspp.parameters(), *model.decoder.parameters()]

    def _inputs(self, model: MSINet):
        """Training inputs (features or images, with flips) and validation inputs."""
        train = build_arrays(self.train_samples, self.size, self.dataset.sigma)
        val = build_arrays(self.val_samples, self.size, self.dataset.sigma)
        if self.config.flip:
            train = with_flips(train)
        if self.config.phase == "full":
            return train, train.images, val, val.images
        cache = self.out / "cache"
        names = [s.name for s in self.train_samples], [s.name for s in self.val_samples]
        key = fingerprint(model, self.config.dataset, self.size, self.config.flip, names)
        train_x = encode(model, train.images, cache / f"train-{key}.safetensors")
        val_x = encode(model, val.images, cache / f"val-{key}.safetensors")
        return train, train_x, val, val_x

    # --- steps -------------------------------------------------------------------------------

    def _forward(self, model: MSINet, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.bf16):
            raw = (
                model.forward_head(x.float())
                if self.config.phase == "head"
                else model.forward_raw(x)
            )
        return normalize_minmax(raw.float(), model.config.eps)

    def _loss(self, pred: torch.Tensor, maps: torch.Tensor, fix: torch.Tensor) -> torch.Tensor:
        loss = kld_loss(maps, pred)
        if self.config.cc_weight:
            loss = loss + self.config.cc_weight * cc_loss(maps, pred)
        if self.config.nss_weight:
            loss = loss + self.config.nss_weight * nss_loss(fix, pred)
        return loss

    def _order(self, epoch: int, n_images: int) -> torch.Tensor:
        """The epoch's sample order and flips, a function of (seed, epoch) only: resumable."""
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(n_images, generator=g)
        if not self.config.flip:
            return order
        return order * 2 + torch.randint(0, 2, (n_images,), generator=g)

    @cached_property
    def _val_truth(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Binary maps and densities of the validation images, built once for all epochs."""
        return [(s.fixations.binary_map(), s.fixations.density(self.eval_sigma))
                for s in self.val_samples]  # fmt: skip

    @torch.no_grad()
    def validate(self, model: MSINet, val: Arrays, val_x: torch.Tensor) -> dict[str, float]:
        model.eval()
        losses, nss, cc, auc = [], [], [], []
        for i, (fmap, density) in enumerate(self._val_truth):
            pred = self._forward(model, val_x[i : i + 1])
            losses.append(float(self._loss(pred, val.maps[i : i + 1], val.fixations[i : i + 1])))
            s = map_to_image(pred[0, 0].numpy(), fmap.shape)  # the image's own size
            nss.append(metrics.nss(s, fmap))
            cc.append(metrics.cc(s, density))
            auc.append(metrics.auc_judd(s, fmap, seed=i))
        return {
            "val_loss": float(np.mean(losses)),
            "NSS": float(np.nanmean(nss)),
            "CC": float(np.nanmean(cc)),
            "AUC-Judd": float(np.nanmean(auc)),
        }

    def _meta(self, model: MSINet, epoch: int, scores: dict[str, float]) -> WeightsMeta:
        return WeightsMeta.from_config(
            model.config,
            training_size=self.size,
            dataset=self.config.dataset,
            version=self.config.version,
            description=f"MSI-Net trained by msinet ({self.config.phase} phase)",
            extra={**{k: f"{v:.6g}" for k, v in scores.items()}, "epoch": str(epoch),
                   **self.config.extra},
        )  # fmt: skip

    # --- the loop ----------------------------------------------------------------------------

    def fit(self, resume: bool = False, progress: bool = True) -> list[dict[str, float]]:
        from tqdm import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        state_path = self.out / "state.json"
        # `stale` (epochs since the best) is state too: a resumed run stops where an
        # uninterrupted one would.
        state = {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0, "stale": 0,
                 "history": []}  # fmt: skip
        if resume:
            if not state_path.is_file():
                raise FileNotFoundError(f"nothing to resume in {self.out}")
            state = json.loads(state_path.read_text())
            if state["config"] != asdict(self.config) | {"epochs": state["config"]["epochs"]}:
                raise ValueError("--resume with a different configuration than the run's")
        remove_partials(self.out)  # what a killed write left
        if resume:
            self._publish(state)
        model, opt = self._model_and_optimizer(state if resume else None)
        train, train_x, val, val_x = self._inputs(model)
        n_images = len(self.train_samples)
        stale = state.get("stale", 0)
        if self.config.patience and stale >= self.config.patience:
            return state["history"]  # the run had already stopped early
        for epoch in range(state["epoch"] + 1, self.config.epochs + 1):
            for group in opt.param_groups:
                group["lr"] = self.config.lr * self.config.lr_decay ** (epoch - 1)
            model.train()
            order = self._order(epoch, n_images)
            batches = [
                order[i : i + self.config.batch_size]
                for i in range(0, n_images, self.config.batch_size)
            ]
            total, start = 0.0, time.perf_counter()
            bar = tqdm(batches, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch",
                       disable=not progress)  # fmt: skip
            for k, idx in enumerate(bar, start=1):
                pred = self._forward(model, train_x[idx])
                loss = self._loss(pred, train.maps[idx], train.fixations[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item()
                bar.set_postfix(loss=f"{total / k:.4f}")
            scores = {"epoch": epoch, "train_loss": total / len(batches),
                      "lr": opt.param_groups[0]["lr"], **self.validate(model, val, val_x),
                      "seconds": time.perf_counter() - start}  # fmt: skip
            state["history"].append(scores)
            # This epoch's files under new names (nothing the committed state names is touched),
            # then the commit: one atomic rename of the state that names them. A kill before it
            # resumes from the previous epoch exactly; after it, from this one.
            files = {"last": f"epoch-{epoch:04d}.safetensors",
                     "last_optim": f"epoch-{epoch:04d}-optim.safetensors",
                     "best": state.get("files", {}).get("best", "")}  # fmt: skip
            save_model(model, self.out / files["last"], self._meta(model, epoch, scores))
            save_optimizer(opt, {id(p): n for n, p in model.named_parameters()},
                           self.out / files["last_optim"])  # fmt: skip
            if scores["val_loss"] < state["best_val_loss"]:
                state["best_val_loss"], state["best_epoch"], stale = scores["val_loss"], epoch, 0
                files["best"] = files["last"]
            else:
                stale += 1
            state["epoch"], state["stale"], state["config"] = epoch, stale, asdict(self.config)
            state["files"] = files
            with written_whole(state_path) as tmp:
                tmp.write_text(json.dumps(state, indent=2))
            self._publish(state)
            self._write_log(state["history"])
            if progress:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in scores.items()))  # fmt: skip
            if self.config.patience and stale >= self.config.patience:
                break
        return state["history"]

    def _publish(self, state: dict) -> None:
        """`last.safetensors` and `best.safetensors` as links to the files the committed state
        names (what people and scripts open), and the epoch files it no longer names deleted."""
        files = state.get("files")
        if not files:  # a run from before epoch files: its last/best are the files themselves
            return
        for name, target in (("last.safetensors", files["last"]),
                             ("best.safetensors", files["best"])):  # fmt: skip
            if target:
                with written_whole(self.out / name) as tmp:
                    try:
                        os.link(self.out / target, tmp)
                    except OSError:  # no hard links on this file system
                        shutil.copyfile(self.out / target, tmp)
        keep = set(files.values())
        for p in self.out.glob("epoch-*.safetensors"):
            if p.name not in keep:
                p.unlink(missing_ok=True)

    def _write_log(self, history: list[dict[str, float]]) -> None:
        with open(self.out / "log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)
        plot_curves(history, self.out / "curves.png")


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
