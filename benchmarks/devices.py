"""Inference and training speed on one device (docs/scaling.md): images per second at batch 1,
8 and 32 for the torch engine in fp32 and with autocast, and for fp32 ONNX Runtime on that
device (its CUDA provider on a GPU); training steps per second of the partial fine-tune; the
device and CPU printed. Maps of every variant are checked against torch fp32 (CC min).

    .venv/bin/python benchmarks/devices.py --device cpu --batches 1 8
    .venv/bin/python benchmarks/devices.py --device cuda          # on a GPU machine
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def describe(device: str) -> str:
    from msinet.engine.cpu import cpu_info

    text = f"CPU: {cpu_info().describe()}"
    if device.startswith("cuda"):
        import torch

        text += f"; GPU: {torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return text


def cpu_has_bf16() -> bool:
    from pathlib import Path

    from msinet.engine.cpu import parse_cpuinfo

    _, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def cc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def images_per_s(engine, batch: np.ndarray, runs: int) -> float:
    engine.predict(batch)  # warm-up (and, on a GPU, kernel selection)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        engine.predict(batch)
        times.append(time.perf_counter() - t)
    return len(batch) / statistics.median(times)


def train_steps_per_s(device: str, steps: int, batch: int) -> float:
    """Partial fine-tune steps (conv4 up, from cached pool3-sized inputs) per second."""
    import torch

    from msinet.training.train import Phase
    from msinet.weights.store import default_weights
    from msinet.weights.torch_io import load_model

    model = load_model(default_weights("torch")).to(device).train()
    step = Phase(model, "partial")
    params = [p for n, p in model.named_parameters() if not n.startswith(
        ("encoder.conv1", "encoder.conv2", "encoder.conv3"))]  # fmt: skip
    opt = torch.optim.AdamW(params, lr=1e-5)
    x = torch.randn(batch, 256, 30, 40, device=device)  # pool3 of a 240x320 input
    target = torch.rand(batch, 1, 240, 320, device=device)

    def one() -> None:
        out = step(x)
        loss = torch.nn.functional.mse_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=5)
    args = ap.parse_args(argv)

    from msinet.engine import DeviceError, load_engine
    from msinet.weights.store import default_weights

    fp16 = default_weights("torch")
    variants = {"torch fp32": ("torch", None)}
    if args.device != "cpu" or cpu_has_bf16():  # emulated bf16 on other CPUs takes minutes
        variants["torch amp bf16"] = ("torch", "bf16")
    if args.device.startswith("cuda"):
        variants["torch amp fp16"] = ("torch", "fp16")
    variants["onnx fp32"] = ("onnx", None)
    rng = np.random.default_rng(0)
    print(describe(args.device))
    print(f"\n| engine on {args.device} | " + " | ".join(f"img/s, batch {b}" for b in args.batches)
          + " | CC min vs torch fp32 |")  # fmt: skip
    print("| --- |" + " --- |" * (len(args.batches) + 1))
    reference = None
    probe = rng.uniform(0, 255, (4, 3, 240, 320)).astype(np.float32)
    for name, (engine_name, amp) in variants.items():
        try:
            engine = load_engine(engine_name, fp16, device=args.device, amp=amp)
        except (DeviceError, ValueError) as e:
            print(f"| {name} | not run: {e} |")
            continue
        maps = engine.predict(probe)
        reference = maps if reference is None else reference
        fidelity = min(cc(a, b) for a, b in zip(maps, reference, strict=True))
        speeds = [images_per_s(engine, rng.uniform(0, 255, (b, 3, 240, 320)).astype(np.float32),
                               args.runs) for b in args.batches]  # fmt: skip
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in speeds) + f" | {fidelity:.4f} |")
        del engine
    if args.train_steps:
        rate = train_steps_per_s(args.device, args.train_steps, 4)
        print(f"\npartial fine-tune, batch 4 at 240x320: {rate:.2f} steps/s "
              f"({4 * rate:.1f} images/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
