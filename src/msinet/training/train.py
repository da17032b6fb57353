"""Training MSI-Net: the official KLD objective, AdamW, seeded and resumable, on one dataset or
several at once (msinet.training.trainset).

Three phases, because end-to-end training costs ~1.5-2 s per image and step on a 2-core CPU; the
layers that do not train run once, their output cached on disk beside the run:
- `head`: the encoder frozen; its 1280-channel features cached; ASPP + decoder train;
- `partial`: blocks 1-3 frozen, pool3 cached (1/8 resolution, fp16); conv4 (or only conv5, with
  `--train-from conv5`), conv5, ASPP and decoder train;
- `full`: end to end from the (cached, preprocessed) images.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from msinet.data import open_dataset
from msinet.engine.device import parse_device, torch_device
from msinet.evaluation import metrics
from msinet.imaging.files import remove_partials, written_whole
from msinet.imaging.postprocess import map_to_image
from msinet.imaging.preprocess import SIZE_PRESETS, parse_size
from msinet.model.net import MSINet, init_weights, normalize_minmax
from msinet.training.config import TrainConfig
from msinet.training.losses import cc_loss, kld_loss, nss_loss
from msinet.training.records import load_optimizer, publish, save_optimizer, write_log
from msinet.training.trainset import Part, build_part, cached_part, sources_of
from msinet.weights.store import WeightsMeta
from msinet.weights.torch_io import init_from_vgg16, load_model, save_model

PHASES = ("head", "partial", "full")
TRAIN_FROM = ("conv4", "conv5")  # the first encoder block a partial fine-tune trains


def frozen_modules(model: MSINet, phase: str) -> list[torch.nn.Module]:
    """The layers whose output the cache holds (they never train in that phase)."""
    enc = model.encoder
    return {"head": [enc], "partial": [enc.conv1, enc.conv2, enc.conv3], "full": []}[phase]


def fingerprint(model: MSINet, phase: str, *parts: object) -> str:
    """Identifies a cache: the frozen layers' weights and what was computed."""
    h = hashlib.sha256(repr((phase, *parts)).encode())
    for module in frozen_modules(model, phase):
        for v in module.state_dict().values():
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


class Phase(torch.nn.Module):
    """The layers a phase trains, as one module (what DistributedDataParallel wraps): the
    cached activations in, the raw map out."""

    def __init__(self, model: MSINet, phase: str) -> None:
        super().__init__()
        self.model, self.phase = model, phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.phase == "head":
            return self.model.forward_head(x)
        if self.phase == "partial":
            return self.model.forward_head(self.model.encoder.forward_top(x))
        return self.model.forward_raw(x)


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        if config.phase not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {config.phase!r}")
        if config.train_from not in TRAIN_FROM:
            raise ValueError(f"train_from must be one of {', '.join(TRAIN_FROM)}, "
                             f"got {config.train_from!r}")  # fmt: skip
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(torch_device(parse_device(config.device)))
        self.out = Path(config.out)
        self.cache = Path(config.cache) if config.cache else self.out / "cache"
        self.sources = sources_of(config.data, config.dataset, config.root,
                                  config.sample_weight)  # fmt: skip
        self.datasets = [open_dataset(s.name, s.root) for s in self.sources]
        default = SIZE_PRESETS.get(self.sources[0].name) if len(self.sources) == 1 else None
        self.size = parse_size(config.size or default or (240, 320))
        self.splits = []  # (train samples, val samples) per source
        for ds in self.datasets:
            train, val = ds.samples("train"), ds.samples("val")
            if config.limit_train:
                train = train[: config.limit_train]
            if config.limit_val:
                val = val[: config.limit_val]
            if not train or not val:
                raise ValueError(f"{ds.name}: the train or val split is empty")
            self.splits.append((train, val))

    @property
    def dataset_label(self) -> str:
        return "+".join(s.name for s in self.sources)

    # --- setup -------------------------------------------------------------------------------

    def _model_and_optimizer(self, state: dict | None):
        """The initial model, or the one the committed `state` names (resume)."""
        files = (state or {}).get("files", LEGACY_FILES)
        model = load_model(self.out / files["last"]) if state else initial_model(self.config.init)
        model.to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)
        groups = []
        for params, scale in self._trained(model):
            for p in params:
                p.requires_grad_(True)
            groups.append({"params": params, "lr_scale": scale})
        opt = torch.optim.AdamW(groups, lr=self.config.lr, weight_decay=self.config.weight_decay)
        if state:
            load_optimizer(opt, dict(model.named_parameters()), self.out / files["last_optim"])
        return model, opt

    def _trained(self, model: MSINet) -> list[tuple[list[torch.nn.Parameter], float]]:
        """The trained parameters in groups with their learning-rate scale."""
        head = [*model.aspp.parameters(), *model.decoder.parameters()]
        factor = self.config.encoder_lr_factor
        enc = model.encoder
        if self.config.phase == "head":
            return [(head, 1.0)]
        if self.config.phase == "partial":
            blocks = [enc.conv4, enc.conv5] if self.config.train_from == "conv4" else [enc.conv5]
            return [(head, 1.0), ([p for b in blocks for p in b.parameters()], factor)]
        return [(head, 1.0), (list(enc.parameters()), factor)]

    def _frozen_fn(self, model: MSINet):
        """The frozen layers as a function of CPU tensors (the cache is on disk, the model on
        the device), and the cache's dtype."""
        phase = self.config.phase
        if phase == "full":
            return (lambda x: x), np.float32
        fn = model.forward_features if phase == "head" else model.forward_stem
        return (lambda x: fn(x.to(self.device)).cpu()), np.float16

    def _parts(self, model: MSINet) -> tuple[list[Part], list[Part]]:
        """Training and validation parts of every source, from the cache or built into it."""
        model.eval()
        frozen, dtype = self._frozen_fn(model)
        out: tuple[list[Part], list[Part]] = ([], [])
        for (src, ds), (train, val) in zip(zip(self.sources, self.datasets, strict=True),
                                           self.splits, strict=True):  # fmt: skip
            for which, samples, flips in (("train", train, self.config.flip), ("val", val, False)):
                key = fingerprint(model, self.config.phase, src.name, which, self.size, ds.sigma,
                                  flips, [s.name for s in samples])  # fmt: skip
                folder = self.cache / f"{src.name}-{which}-{self.config.phase}-{key}"

                def build(folder=folder, samples=samples, flips=flips, label=f"{src.name} {which}",
                          sigma=ds.sigma):  # fmt: skip
                    return build_part(folder, samples, self.size, sigma, flips, frozen, dtype,
                                      f"cache {label}", progress=self.progress)  # fmt: skip

                arrays = cached_part(folder, build)
                part = Part(src.name, samples, flips=flips, **arrays)
                (out[0] if which == "train" else out[1]).append(part)
        return out

    # --- steps -------------------------------------------------------------------------------

    def _forward(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """`model`: the Phase wrapper, or its DistributedDataParallel."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            raw = model(x.to(self.device))
        return normalize_minmax(raw.float(), self.eps)

    def _loss(self, pred: torch.Tensor, maps: torch.Tensor, fix: torch.Tensor) -> torch.Tensor:
        maps, fix = maps.to(pred.device), fix.to(pred.device)
        loss = kld_loss(maps, pred)
        if self.config.cc_weight:
            loss = loss + self.config.cc_weight * cc_loss(maps, pred)
        if self.config.nss_weight:
            loss = loss + self.config.nss_weight * nss_loss(fix, pred)
        return loss

    def _order(self, epoch: int, parts: list[Part]) -> torch.Tensor:
        """(draws, 2) rows of (part, row) for the epoch, a function of (seed, epoch) only:
        resumable. Each source gives round(weight x its images) draws, each image once before
        any twice; with flips, each draw takes the image or its mirror at random."""
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        draws = []
        for k, (src, part) in enumerate(zip(self.sources, parts, strict=True)):
            n = len(part.samples)
            count = round(src.weight * n)
            if not count:
                continue
            reps = math.ceil(count / n)
            idx = torch.cat([torch.randperm(n, generator=g) for _ in range(reps)])[:count]
            draws.append(torch.stack((torch.full_like(idx, k), idx), dim=1))
        order = torch.cat(draws)
        order = order[torch.randperm(len(order), generator=g)]
        if self.config.flip:
            order[:, 1] = order[:, 1] * 2 + torch.randint(0, 2, (len(order),), generator=g)
        return order

    @staticmethod
    def _gather(parts: list[Part], rows: torch.Tensor):
        got = [parts[int(k)].batch([int(r)]) for k, r in rows]
        return tuple(torch.cat(t) for t in zip(*got, strict=True))

    @cached_property
    def _val_truth(self) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Binary maps and densities of the validation images, built once for all epochs."""
        sigmas = [self.config.eval_sigma or ds.eval_sigma for ds in self.datasets]
        return [[(s.fixations.binary_map(), s.fixations.density(sigma)) for s in val]
                for sigma, (_, val) in zip(sigmas, self.splits, strict=True)]  # fmt: skip

    @torch.no_grad()
    def validate(self, model: Phase, parts: list[Part]) -> dict[str, float]:
        """Per dataset: loss, NSS, CC, AUC-Judd; and their means over the datasets (val_loss,
        the model-selection criterion, weighs every dataset alike whatever its size)."""
        model.eval()
        scores: dict[str, float] = {}
        per: dict[str, list[float]] = {"val_loss": [], "NSS": [], "CC": [], "AUC-Judd": []}
        for part, truth in zip(parts, self._val_truth, strict=True):
            losses, nss, cc, auc = [], [], [], []
            for i, (fmap, density) in enumerate(truth):
                x, maps, fix = part.batch([i])
                pred = self._forward(model, x)
                losses.append(float(self._loss(pred, maps, fix)))
                s = map_to_image(pred[0, 0].cpu().numpy(), fmap.shape)  # the image's own size
                nss.append(metrics.nss(s, fmap))
                cc.append(metrics.cc(s, density))
                auc.append(metrics.auc_judd(s, fmap, seed=i))
            row = {"val_loss": float(np.mean(losses)), "NSS": float(np.nanmean(nss)),
                   "CC": float(np.nanmean(cc)), "AUC-Judd": float(np.nanmean(auc))}  # fmt: skip
            for k, v in row.items():
                per[k].append(v)
                if len(parts) > 1:
                    scores[f"{part.dataset}/{k}"] = v
        return {k: float(np.mean(v)) for k, v in per.items()} | scores

    def _meta(self, model: MSINet, epoch: int, scores: dict[str, float]) -> WeightsMeta:
        return WeightsMeta.from_config(
            model.config,
            training_size=self.size,
            dataset=self.dataset_label,
            version=self.config.version,
            description=f"MSI-Net trained by msinet ({self.config.phase} phase)",
            extra={**{k: f"{v:.6g}" for k, v in scores.items()}, "epoch": str(epoch),
                   **self.config.extra},
        )  # fmt: skip

    # --- the loop ----------------------------------------------------------------------------

    def fit(self, resume: bool = False, progress: bool = True, shard: tuple[int, int] = (0, 1),
            on_epoch=None) -> list[dict[str, float]]:  # fmt: skip
        """Train; resumable from the committed state. `shard` = (rank, world size) of a
        data-parallel run (scale/train.py, torch.distributed initialised): every rank
        takes its slice of each global batch, DistributedDataParallel averages the gradients
        so that the step equals one process's on the whole batch, and rank 0 alone validates,
        writes the run's files and decides when to stop. `on_epoch(scores)` runs on every rank
        after each epoch (Ray Train's report)."""
        from tqdm import tqdm

        rank, world = shard
        if world > 1:
            import torch.distributed as dist

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
            # a field added since the run started takes its default
            saved = asdict(TrainConfig()) | state["config"]
            if saved != asdict(self.config) | {"epochs": saved["epochs"]}:
                raise ValueError("--resume with a different configuration than the run's")
        remove_partials(self.out)  # what a killed write left
        if resume:
            publish(self.out, state)
        self.progress = progress and rank == 0
        model, opt = self._model_and_optimizer(state if resume else None)
        self.eps = model.config.eps
        if world > 1 and rank > 0:
            dist.barrier()  # rank 0 builds the caches; the others open them
        train, val = self._parts(model)
        if world > 1 and rank == 0:
            dist.barrier()
        step = Phase(model, self.config.phase)
        net = step if world == 1 else torch.nn.parallel.DistributedDataParallel(step)
        stale = state.get("stale", 0)
        if self.config.patience and stale >= self.config.patience:
            return state["history"]  # the run had already stopped early
        for epoch in range(state["epoch"] + 1, self.config.epochs + 1):
            for group in opt.param_groups:
                group["lr"] = (self.config.lr * group["lr_scale"]
                               * self.config.lr_decay ** (epoch - 1))  # fmt: skip
            model.train()
            order = self._order(epoch, train)
            bs = self.config.batch_size
            batches = [order[i : i + bs] for i in range(0, len(order), bs)]
            total, start = 0.0, time.perf_counter()
            bar = tqdm(batches, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch",
                       disable=not self.progress)  # fmt: skip
            for k, rows in enumerate(bar, start=1):
                mine = rows[rank::world]
                # each rank's mean loss weighted by its share of the batch: the gradients DDP
                # averages are then the whole batch's (a rank with no row runs one at weight 0)
                weight = len(mine) * world / len(rows)
                x, maps, fix = self._gather(train, mine if len(mine) else rows[:1])
                loss = self._loss(self._forward(net, x), maps, fix)
                opt.zero_grad(set_to_none=True)
                (loss * weight).backward()
                opt.step()
                done = loss.detach() * (weight / world)
                if world > 1:
                    dist.all_reduce(done)
                total += done.item()
                bar.set_postfix(loss=f"{total / k:.4f}")
            scores = {"epoch": epoch, "train_loss": total / len(batches),
                      "lr": opt.param_groups[0]["lr"]}  # fmt: skip
            if rank > 0:
                scores, stop = self._from_rank0()
                if on_epoch:
                    on_epoch(scores)
                if stop:
                    break
                continue
            scores |= {**self.validate(step, val), "seconds": time.perf_counter() - start}
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
            publish(self.out, state)
            write_log(self.out, state["history"])
            if self.progress:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in scores.items()))  # fmt: skip
            stop = bool(self.config.patience and stale >= self.config.patience)
            if world > 1:
                self._from_rank0(scores, stop)
            if on_epoch:
                on_epoch(scores)
            if stop:
                break
        return state["history"]

    @staticmethod
    def _from_rank0(scores: dict | None = None, stop: bool = False) -> tuple[dict, bool]:
        """Rank 0's epoch scores and stop decision, sent to every rank."""
        import torch.distributed as dist

        box = [(scores, stop)]
        dist.broadcast_object_list(box, src=0)
        return box[0]
