"""`msinet predict` and `msinet info` end to end on real OSIE images."""

import json

import numpy as np
import pytest
from PIL import Image

from msinet.cli import main
from msinet.weights import store as W


@pytest.fixture
def inputs(osie_folder):
    return osie_folder(3)


def test_predict_folder_with_overlay_and_batches(tmp_path, inputs, random_weights):
    out = tmp_path / "out"
    rc = main(
        [
            "predict",
            str(inputs),
            "-o",
            str(out),
            "--weights",
            str(random_weights),
            "--overlay",
            "--batch-size",
            "2",
            "-q",
        ]
    )
    assert rc == 0
    for p in sorted(inputs.iterdir()):
        m = np.asarray(Image.open(out / f"{p.stem}.png"))
        assert m.shape == (600, 800) and m.dtype == np.uint8
        assert m.max() == 255 and m.min() == 0  # min-max normalised
        ov = Image.open(out / f"{p.stem}_overlay.jpg")
        assert ov.size == (800, 600) and ov.mode == "RGB"


@pytest.mark.slow
def test_batch_size_does_not_change_maps(tmp_path, inputs, random_weights):
    for bs in (1, 3):
        assert (
            main(
                [
                    "predict",
                    str(inputs / "*.jpg"),
                    "-o",
                    str(tmp_path / f"b{bs}"),
                    "--weights",
                    str(random_weights),
                    "--batch-size",
                    str(bs),
                    "-q",
                ]
            )
            == 0
        )
    for p in inputs.iterdir():
        a = np.asarray(Image.open(tmp_path / "b1" / f"{p.stem}.png"), np.int16)
        b = np.asarray(Image.open(tmp_path / "b3" / f"{p.stem}.png"), np.int16)
        assert np.abs(a - b).max() <= 1


@pytest.mark.slow  # > 4 s on the 2-core machine: CI runs it
def test_bad_files_are_reported_and_skipped(tmp_path, inputs, random_weights, capsys):
    (inputs / "text.jpg").write_text("not an image")
    (inputs / "empty.png").write_bytes(b"")
    good = sorted(inputs.glob("1*.jpg"))
    (inputs / "cut.jpg").write_bytes(good[0].read_bytes()[:3000])
    out = tmp_path / "out"
    rc = main(
        [
            "predict",
            str(inputs),
            str(tmp_path / "missing.jpg"),
            "-o",
            str(out),
            "--weights",
            str(random_weights),
            "--batch-size",
            "4",
            "-q",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    for name in ("text.jpg", "empty.png", "cut.jpg", "missing.jpg"):
        assert name in err
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in good)


def test_custom_size_preset(tmp_path, inputs, random_weights):
    one = sorted(inputs.iterdir())[0]
    rc = main(
        [
            "predict",
            str(one),
            "-o",
            str(tmp_path / "o"),
            "--weights",
            str(random_weights),
            "--size",
            "mit1003",
            "-q",
        ]
    )
    assert rc == 0
    assert Image.open(tmp_path / "o" / f"{one.stem}.png").size == (800, 600)


def test_predict_without_weights_says_so(tmp_path, inputs, monkeypatch, capsys):
    monkeypatch.setattr(W, "SHIPPED", {})
    rc = main(["predict", str(inputs), "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "no trained weights are installed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_options_are_clear_errors(tmp_path, inputs, random_weights, capsys):
    base = ["predict", str(inputs), "-o", str(tmp_path / "o"), "--weights", str(random_weights)]
    assert main([*base, "--size", "100x100"]) == 2
    assert main([*base, "--colormap", "nope"]) == 2
    with pytest.raises(SystemExit) as e:  # argparse's own error, before any work
        main([*base, "--batch-size", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "multiples of 8" in err and "unknown colormap" in err and "--batch-size" in err


def test_info_prints_metadata(random_weights, capsys):
    assert main(["info", str(random_weights)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 24_934_209
    assert info["input_order"] == "bgr" and info["training_size"] == [240, 320]
    assert info["dtypes"] == ["float16"] and info["content_hash"] == "verified"


def test_info_on_corrupt_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    assert main(["info", str(bad)]) == 2
    assert "not a safetensors file" in capsys.readouterr().err


def test_export_fp16_keeps_metadata_and_updates_version(tmp_path, random_model, capsys):
    from msinet.weights.store import WeightsMeta, load_arrays
    from msinet.weights.torch_io import save_model

    src = tmp_path / "fp32.safetensors"
    save_model(random_model, src, WeightsMeta(dataset="osie", version="1"))
    dst = tmp_path / "fp16.safetensors"
    assert main(["export", "--weights", str(src), "-o", str(dst), "--version", "2"]) == 0
    assert "sha256" in capsys.readouterr().out
    tensors, meta = load_arrays(dst)
    assert meta.dataset == "osie" and meta.version == "2"
    assert {str(t.dtype) for t in tensors.values()} == {"float16"}
    assert dst.stat().st_size < 0.55 * src.stat().st_size


def test_serve_and_train_flags_come_from_their_configs():
    """One place for names, defaults and help: Settings and TrainConfig."""
    import dataclasses

    from msinet.cli import build_parser
    from msinet.server.settings import Settings
    from msinet.training.config import TrainConfig

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve, train = sub.choices["serve"], sub.choices["train"]
    serve_flags = {a.dest: a for a in serve._actions}
    for name, field in Settings.model_fields.items():
        assert name in serve_flags, name
        assert field.description and field.description in serve_flags[name].help
        if field.default not in (None, "", []):
            assert f"(default: {field.default})" in serve_flags[name].help
    train_flags = {a.dest for a in train._actions}
    for f in dataclasses.fields(TrainConfig):
        assert (f.name in train_flags) == f.metadata.get("cli", True), f.name
    args = parser.parse_args(["train", "--root", "r", "--init", "i", "--no-flip", "--lr", "0.5"])
    assert args.flip is False and args.lr == 0.5 and not hasattr(args, "epochs")
    args = parser.parse_args(["serve", "--max-batch-size", "4", "--cors-origins", "a", "b"])
    assert args.max_batch_size == 4 and args.cors_origins == ["a", "b"]
    assert not hasattr(args, "port")  # unset flags leave the Settings default (or MSINET_PORT)


def test_bench_goes_through_the_one_parser(capsys):
    """`msinet bench` is a subcommand like the others (it had its own parser, which took
    abbreviated flags): `--engine` for `--engines` is refused, and its help is the CLI's."""
    from msinet.cli import build_parser, main

    with pytest.raises(SystemExit) as e:
        main(["bench", "--engine", "onnx"])
    assert e.value.code == 2 and "--engine" in capsys.readouterr().err
    args = build_parser().parse_args(["bench", "--engines", "onnx", "--runs", "2"])
    assert args.engines == ["onnx"] and args.runs == 2 and args.func is not None
