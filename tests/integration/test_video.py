"""Saliency videos (issue 19): a short video made of real OSIE images round-trips with its frame
count, frame rate and size, its maps match the still-image maps of the same frames, and bad
videos are one line each while the other inputs finish."""

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av", reason="PyAV is the optional msinet[video] extra")

from msinet.cli import main  # noqa: E402
from msinet.pipeline import load  # noqa: E402
from msinet.video import VideoWriter  # noqa: E402


def write_video(path, images, size=(321, 241), repeat=3, rate=12) -> None:
    """Frames from real images (odd size on purpose), each shown `repeat` times."""
    out = VideoWriter(path, Fraction(rate), size)
    for p in images:
        frame = np.asarray(Image.open(p).convert("RGB").resize(size))
        for _ in range(repeat):
            out.write(frame)
    out.close()


def read_video(path, fmt="gray"):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format=fmt) for f in c.decode(s)]
        return frames, float(s.average_rate), (s.codec_context.width, s.codec_context.height)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, osie_images):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, osie_images[:3])
    return path


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_a_video_round_trips_with_the_still_image_maps(tmp_path, clip, random_weights):
    out = tmp_path / "out"
    rc = main(["predict", str(clip), "-o", str(out), "--weights", str(random_weights),
               "--engine", "onnx", "--overlay", "--batch-size", "4", "-q"])  # fmt: skip
    assert rc == 0
    maps, fps, size = read_video(out / "clip.mp4")
    inputs, in_fps, in_size = read_video(clip, "rgb24")
    assert (len(maps), fps, size) == (len(inputs), in_fps, in_size) == (9, 12.0, (321, 241))
    pipeline = load(random_weights, engine="onnx")
    for frame, m in zip(inputs, maps, strict=True):
        still = pipeline.predict(frame)
        assert np.corrcoef(still.ravel(), m.ravel().astype(float))[0, 1] >= 0.95
    overlays, _, overlay_size = read_video(out / "clip_overlay.mp4", "rgb24")
    assert len(overlays) == 9 and overlay_size == (321, 241)
    assert not list(out.glob("*.partial"))


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_smoothing_blends_over_time(tmp_path, clip, random_weights):
    def maps(*extra):
        out = tmp_path / f"out{len(extra)}"
        assert main(["predict", str(clip), "-o", str(out), "--weights", str(random_weights),
                     "--engine", "onnx", "-q", *extra]) == 0  # fmt: skip
        return [m.astype(float) for m in read_video(out / "clip.mp4")[0]]

    plain, smooth = maps(), maps("--smooth", "0.8")
    assert np.abs(plain[0] - smooth[0]).mean() < 2  # nothing to blend: compression noise only
    # at the cut to the second image, the smoothed map still carries the first image's
    assert np.abs(plain[3] - smooth[3]).mean() > 3 * np.abs(plain[1] - smooth[1]).mean()
    with pytest.raises(SystemExit) as e:  # argparse: usage and one line, exit 2
        main(["predict", str(clip), "-o", str(tmp_path / "x"), "--smooth", "1"])
    assert e.value.code == 2


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_bad_videos_are_one_line_and_the_rest_finishes(tmp_path, clip, osie_images,
                                                       random_weights, capsys):  # fmt: skip
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: len(clip.read_bytes()) // 2])
    out = tmp_path / "out"
    rc = main(["predict", str(garbage), str(cut), str(clip), str(osie_images[0]), "-o",
               str(out), "--weights", str(random_weights), "--engine", "onnx", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    skipped = [line for line in err.splitlines() if line.startswith("msinet: skipped")]
    assert len(skipped) == 2 and all(str(p) in "".join(skipped) for p in (garbage, cut))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["clip.mp4", f"{osie_images[0].stem}.png"]
    )


@pytest.mark.slow  # 5-15 s: out of the 3-minute default run; CI runs it
def test_video_messages_match_what_was_written(tmp_path, clip, random_weights, capsys):
    """No empty image bar and no '0 saliency map(s) written' after a video; the frame bar
    knows its total from the container."""
    from msinet.video import frame_count

    assert frame_count(clip) == 9 and frame_count(tmp_path / "nope.mp4") is None
    rc = main(["predict", str(clip), "-o", str(tmp_path / "vid"), "--weights",
               str(random_weights), "--engine", "onnx"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0 and "0 saliency map(s)" not in err and "predict:" not in err
    assert "9/9" in err and "9 frames at 12 fps" in err
