"""--device and --amp: parsing, one-line refusals where the device or provider is missing (this
machine has no GPU), and mixed precision's fidelity on the CPU."""

import numpy as np
import pytest

from msinet.cli import main
from msinet.engine import DeviceError, auto_engine, load_engine
from msinet.engine.device import onnx_providers, parse_device
from msinet.evaluation.metrics import cc
from msinet.pipeline import load
from msinet.weights.store import default_weights


@pytest.mark.parametrize("spec, parsed", [(None, "cpu"), ("CPU", "cpu"), ("cuda", "cuda"),
                                          ("cuda:1", "cuda:1"), ("mps", "mps")])  # fmt: skip
def test_devices_parse(spec, parsed):
    assert parse_device(spec) == parsed


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "tpu", "cuda:0:1"])
def test_unknown_devices_are_refused(spec):
    with pytest.raises(DeviceError, match="give cpu, cuda, cuda:N or mps"):
        parse_device(spec)


def no_cuda() -> None:
    import onnxruntime as ort
    import torch

    if torch.cuda.is_available() or "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: the refusals are for machines without it")


def test_engines_refuse_a_missing_gpu_in_one_line(random_weights):
    no_cuda()
    for engine, words in [("torch", "torch sees no CUDA GPU"),
                          ("onnx", "no CUDA execution provider")]:  # fmt: skip
        with pytest.raises(DeviceError, match=words) as e:
            load_engine(engine, random_weights, device="cuda")
        assert "\n" not in str(e.value)
    with pytest.raises(DeviceError, match="onnx-int8 engine runs on the CPU"):
        load_engine("onnx-int8", default_weights("onnx-int8"), device="cuda")
    with pytest.raises(DeviceError, match="no Apple GPU|cpu or cuda"):
        load_engine("torch", random_weights, device="mps")
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]


def test_the_engine_rule_on_a_gpu_prefers_onnx_runtime_cuda_else_torch():
    no_cuda()
    assert auto_engine(None, "cpu") == "onnx-int8" and auto_engine("w.safetensors") == "onnx"
    assert auto_engine(None, "cuda") == "torch" and auto_engine(None, "mps") == "torch"


def test_predict_on_a_missing_gpu_is_one_line_and_exit_2(osie_images, tmp_path, capsys):
    no_cuda()
    assert main(["predict", str(osie_images[0]), "-o", str(tmp_path / "out"), "--device",
                 "cuda"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cuda" in err
    assert not (tmp_path / "out").exists()


def test_amp_is_the_torch_engines(random_weights):
    with pytest.raises(ValueError, match="torch engine's mixed precision"):
        load_engine("onnx", random_weights, amp="bf16")
    with pytest.raises(ValueError, match="amp must be one of"):
        load_engine("torch", random_weights, amp="fp8")


@pytest.mark.slow  # bf16 on a CPU without bf16 units is emulated: slow, hence small inputs
def test_bf16_autocast_keeps_the_maps(osie_images):
    """Mixed precision checked like int8: CC >= 0.999 against fp32, on real images (bf16 runs
    on any CPU torch supports; GPUs are where it pays, docs/scaling.md)."""
    fp32 = load(engine="torch", size="96x128")
    bf16 = load(engine="torch", size="96x128", amp="bf16")
    for image in osie_images[:2]:
        a, b = fp32.predict(image), bf16.predict(image)
        assert b.dtype == np.float32 and b.shape == a.shape
        assert cc(a, b) >= 0.999


def needs_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: the GPU checks run where one is (docs/scaling.md)")


@pytest.mark.parametrize("amp", [None, "fp16", "bf16"])
def test_cuda_maps_match_the_cpu(amp, osie_images):
    needs_cuda()
    cpu = load(engine="torch")
    gpu = load(engine="torch", device="cuda", amp=amp)
    for image in osie_images[:4]:
        assert cc(cpu.predict(image), gpu.predict(image)) >= 0.999
