"""ONNX Runtime and OpenVINO side by side on this CPU (issue 33): ms per image and map fidelity.

Engines, all in one process, timed in interleaved rounds (each round runs every engine over
the same images, batch 1, so drift in the machine's speed hits all of them alike):

- `ort-fp32`: ONNX Runtime on the fp32 graph built from the shipped safetensors (the reference
  for fidelity);
- `ort-int8`: ONNX Runtime on the shipped int8 QDQ file (msinet's default engine);
- `ov-fp32`: OpenVINO on the same fp32 graph;
- `ov-int8`: OpenVINO reading the shipped QDQ file directly (its own oneDNN int8 kernels);
- `ov-bf16`: OpenVINO on the fp32 graph with bf16 inference precision, where the CPU has
  AVX-512 BF16 or AMX (skipped elsewhere).

Fidelity: CC between each engine's model-size map and ort-fp32's, per image (min and mean).

    .venv/bin/pip install openvino
    .venv/bin/python benchmarks/engines_side_by_side.py [--images 24] [--rounds 3] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cpu_lines() -> list[str]:
    from msinet.engine.cpu import cpu_info

    lines = [f"CPU: {cpu_info().describe()}"]
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        flags = next((ln.split(":", 1)[1].split() for ln in flags.splitlines()
                      if ln.startswith("Flags:")), [])  # fmt: skip
        wanted = [f for f in flags if f.startswith(("avx", "amx", "fma", "f16c"))]
        lines.append("lscpu flags: " + " ".join(wanted))
    except (OSError, subprocess.CalledProcessError):
        pass
    return lines


def has_bf16() -> bool:
    from msinet.engine.cpu import parse_cpuinfo

    _, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inputs(root: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    from msinet.data import open_dataset
    from msinet.imaging.decode import load_image
    from msinet.imaging.preprocess import preprocess

    samples = open_dataset("osie", root).samples("val")[:n]
    out = []
    for s in samples:
        x, _ = preprocess(load_image(s.image), size)
        out.append(np.ascontiguousarray(x.transpose(2, 0, 1))[None].astype(np.float32))
    return out


def ort_engine(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})[0][0, 0]


def ov_engine(path: str, threads: int, precision: str, shape: tuple[int, ...]):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(path)
    model.reshape({"images": list(shape)})
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    })  # fmt: skip
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return np.array(request.infer({"images": x})[compiled.output(0)])[0, 0]

    return run


def cc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(ROOT.parent / "shared/data/osie"))
    ap.add_argument("--images", type=int, default=24, help="OSIE validation images")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)

    import onnx
    import openvino

    from msinet.weights.onnx_graph import build_from_weights
    from msinet.weights.store import default_weights

    size = (240, 320)
    xs = inputs(Path(args.root), args.images, size)
    fp32_path = Path("/tmp/msinet-side-by-side-fp32.onnx")
    onnx.save(build_from_weights(default_weights("torch")), str(fp32_path))
    int8_path = str(default_weights("onnx-int8"))
    shape = (1, 3, *size)
    engines = {
        "ort-fp32": ort_engine(str(fp32_path), args.threads),
        "ort-int8": ort_engine(int8_path, args.threads),
        "ov-fp32": ov_engine(str(fp32_path), args.threads, "f32", shape),
        "ov-int8": ov_engine(int8_path, args.threads, "f32", shape),
    }
    if has_bf16():
        engines["ov-bf16"] = ov_engine(str(fp32_path), args.threads, "bf16", shape)

    maps = {name: [run(x) for x in xs] for name, run in engines.items()}  # also the warm-up
    times: dict[str, list[float]] = {name: [] for name in engines}
    for r in range(args.rounds):
        for name, run in engines.items():
            t = time.perf_counter()
            for x in xs:
                run(x)
            times[name].append((time.perf_counter() - t) / len(xs) * 1e3)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {v[-1]:.1f}" for n, v in times.items()) + " ms/img", file=sys.stderr)  # fmt: skip

    reference = maps["ort-fp32"]
    ort_int8 = statistics.median(times["ort-int8"])
    rows = []
    for name in engines:
        ccs = [cc(a, b) for a, b in zip(maps[name], reference, strict=True)]
        ms = statistics.median(times[name])
        rows.append({"engine": name, "ms_per_img": round(ms, 1),
                     "ms_rounds": [round(t, 1) for t in times[name]],
                     "vs_ort_int8": round(ort_int8 / ms, 2),
                     "cc_min": round(min(ccs), 4),
                     "cc_mean": round(float(np.mean(ccs)), 4)})  # fmt: skip
    import onnxruntime

    head = [*cpu_lines(), f"onnxruntime {onnxruntime.__version__}, openvino "
            f"{openvino.__version__}; {args.images} OSIE val images at 240x320, batch 1, "
            f"{args.threads} threads, median of {args.rounds} interleaved rounds"]  # fmt: skip
    print("\n".join(head))
    print("\n| engine | ms/img | rounds | speed vs ort-int8 | CC min | CC mean |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['engine']} | {r['ms_per_img']} | {' / '.join(map(str, r['ms_rounds']))} | "
              f"{r['vs_ort_int8']}x | {r['cc_min']:.4f} | {r['cc_mean']:.4f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"header": head, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
