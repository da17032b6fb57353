"""Both weights file kinds behind one set of calls."""

import pytest

from msinet.density import DensityCalibration
from msinet.weights.files import check_file, is_onnx, read_meta, source_hash, write_density
from msinet.weights.store import WeightsError, default_weights, read_header


def test_shipped_files_of_both_kinds_read_the_same_model():
    fp16, int8 = default_weights("torch"), default_weights("onnx-int8")
    assert not is_onnx(fp16) and is_onnx(int8)
    a, b = read_meta(fp16), read_meta(int8)
    assert a.config() == b.config() and a.version == b.version == "2"
    assert a.density is not None and b.density == a.density
    assert source_hash(int8) == source_hash(fp16) == read_header(fp16)["content_sha256"]
    check_file(fp16)
    check_file(int8)


def test_a_file_that_is_not_weights_is_refused(tmp_path):
    for name in ("x.onnx", "x.safetensors"):
        (tmp_path / name).write_bytes(b"garbage")
        with pytest.raises(WeightsError):
            check_file(tmp_path / name)


def test_a_density_for_another_model_is_refused(random_weights, tmp_path):
    import shutil

    path = tmp_path / "w.safetensors"
    shutil.copy(random_weights, path)
    before = path.read_bytes()
    cal = DensityCalibration(blur=0.0, exponent=1.0, centre_weight=0.1, centre_mean=(0.5, 0.5),
                             centre_std=(0.2, 0.2), floor=1e-8)  # fmt: skip
    with pytest.raises(WeightsError, match="other weights"):
        write_density(path, cal, "0" * 64)
    assert path.read_bytes() == before
    write_density(path, cal, source_hash(path))
    assert read_meta(path).density == cal
