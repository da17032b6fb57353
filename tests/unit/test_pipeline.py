"""The one image -> map path and the public Python API (msinet.load)."""

import numpy as np
import pytest
from PIL import Image

import msinet
from msinet.engine import ENGINES
from msinet.imaging.decode import ImageError
from msinet.pipeline import Pipeline, resolve
from msinet.weights import store as W


@pytest.fixture(scope="module")
def pipeline():
    return msinet.load(threads=2)


def test_the_engine_rule(tmp_path):
    """One rule everywhere: shipped model -> int8 ONNX Runtime, other weights -> fp32 ONNX
    Runtime (both where installed), an explicit engine wins."""
    assert resolve() == ("onnx-int8", W.default_weights("onnx-int8"))
    assert resolve(tmp_path / "w.safetensors") == ("onnx", tmp_path / "w.safetensors")
    assert resolve(engine="torch") == ("torch", W.default_weights("torch"))
    assert resolve(engine="onnx") == ("onnx", W.default_weights())


def test_load_gives_the_shipped_model(pipeline):
    assert isinstance(pipeline, Pipeline) and pipeline.engine.name == "onnx-int8"
    assert pipeline.size == (240, 320) and pipeline.engine.meta.dataset == "osie+mit1003+eyecrowd"


def test_paths_pil_images_and_arrays_give_the_same_map(pipeline, osie_images):
    path = osie_images[0]
    m = pipeline.predict(path)
    assert m.shape == (600, 800) and m.dtype == np.float32 and 0 <= m.min() < m.max() <= 1
    rgb = np.asarray(Image.open(path))
    for other in (str(path), path.read_bytes(), Image.open(path), rgb, rgb / 255.0,
                  np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])):  # fmt: skip
        np.testing.assert_array_equal(pipeline(other), m)
    grey = pipeline.predict(rgb[:, :, 1])
    assert grey.shape == (600, 800)


def test_high_saliency_falls_where_people_looked(pipeline, osie_root):
    """On real validation images the predicted map is far higher at fixated pixels."""
    from msinet.data.osie import OSIE

    for s in OSIE(osie_root).samples("val")[:3]:
        m = pipeline.predict(s.image)
        fix = s.fixations.binary_map()
        assert m[fix].mean() > 2 * m.mean()


def test_predict_many_matches_one_by_one(pipeline, osie_images):
    images = [np.asarray(Image.open(p)) for p in osie_images[:2]] + [np.zeros((5, 7, 3), np.uint8)]
    many = pipeline.predict_many(images)
    assert [m.shape for m in many] == [(600, 800), (600, 800), (5, 7)]
    for a, b in zip(many[:2], images[:2], strict=True):
        np.testing.assert_allclose(a, pipeline.predict(b), atol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 4, 2)), "must be"),
        (np.full((4, 4, 3), np.nan), "finite"),
        (b"not an image", "not an image"),
        (12, "not an image: int"),
    ],
)
def test_bad_inputs_give_one_line_errors(pipeline, bad, message):
    with pytest.raises(ImageError, match=message) as e:
        pipeline.predict(bad)
    assert "\n" not in str(e.value)


def test_encode_png_and_jpeg(pipeline, osie_images):
    image = np.asarray(Image.open(osie_images[0]))
    m = pipeline.predict(image)
    import io

    png = Image.open(io.BytesIO(pipeline.encode(image, m)))
    assert png.size == (800, 600) and png.mode == "L"
    jpeg = Image.open(io.BytesIO(pipeline.encode(image, m, "jpeg", with_overlay=True)))
    assert jpeg.format == "JPEG" and jpeg.size == (800, 600) and jpeg.mode == "RGB"


@pytest.fixture(scope="module")
def fp32_map(osie_images):
    return msinet.load(engine="onnx", threads=2).predict(osie_images[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_through_the_public_api(engine, osie_images, fp32_map):
    model = msinet.load(engine=engine, threads=2)
    assert model.engine.meta.dataset == "osie+mit1003+eyecrowd"
    m = model.predict(osie_images[0])
    assert m.shape == fp32_map.shape
    assert np.corrcoef(m.ravel(), fp32_map.ravel())[0, 1] >= 0.995


@pytest.mark.parametrize("original", [(600, 800), (1203, 517), (37, 4000), (5, 3)])
def test_maps_read_in_bands_equal_the_whole_map(original):
    """8-bit maps and overlays read the image-size map a band of rows at a time (an ImageMap),
    never whole: the same bytes as from the whole map, bicubic (enlarged) and area (shrunk)."""
    from msinet.imaging.postprocess import ImageMap, map_to_image, overlay, to_uint8

    rng = np.random.default_rng(1)
    m = rng.random((240, 320)).astype(np.float32)
    whole = map_to_image(m, original)
    lazy = ImageMap(m, original)
    assert lazy.shape == whole.shape == original
    np.testing.assert_array_equal(to_uint8(lazy), to_uint8(whole))
    image = rng.integers(0, 256, (*original, 3), np.uint8)
    np.testing.assert_array_equal(
        overlay(image, lazy, "jet", 0.6), overlay(image, whole, "jet", 0.6)
    )
    np.testing.assert_array_equal(lazy[3:9], whole[3:9])
    with pytest.raises(TypeError, match="bands of rows"):
        lazy[::2]


def test_the_batch_driver_keeps_order_skips_bad_inputs_and_batches_calls(pipeline, osie_images):
    """Pipeline.run_batches, which predict, Ray Data, video and calibrate all use: results in
    input order, a bad input yielded with its error without costing its batch, one engine call
    per batch of good inputs, and the same maps as one image at a time."""
    calls = []
    run = pipeline.run

    def counted(xs):
        calls.append(len(xs))
        return run(xs)

    inputs = [("a", osie_images[0]), ("bad", b"not an image"), ("b", osie_images[1]),
              ("c", osie_images[2]), ("d", osie_images[3])]  # fmt: skip
    pipeline.run = counted
    try:
        done = list(pipeline.run_batches(inputs, batch_size=2))
    finally:
        del pipeline.run
    assert [d.key for d in done] == ["a", "bad", "b", "c", "d"]
    assert isinstance(done[1].error, ImageError) and done[1].map is None
    assert calls == [1, 2, 1]  # (a, bad) -> a; (b, c); (d)
    assert all(d.input is None for d in done)  # model inputs are not kept
    for d, (_, path) in zip(done, inputs, strict=True):
        if d.error is None:
            single = pipeline.predict(path)
            np.testing.assert_allclose(pipeline.map_back(d.map, d.geometry), single, atol=1e-6)
    with pytest.raises(ImageError):
        pipeline.predict_many([osie_images[0], b"not an image"])
