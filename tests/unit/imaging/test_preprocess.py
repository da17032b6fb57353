import numpy as np
import pytest

from msinet.imaging.decode import load_image
from msinet.imaging.postprocess import map_to_image, overlay, to_uint8
from msinet.imaging.preprocess import SIZE_PRESETS, parse_size, preprocess, preprocess_map
from msinet.imaging.resize import area_matrix, bicubic_matrix, fit_size, resize


def test_area_hand_computed():
    # TF resize_area, align_corners=True, 4 -> 2: scale (4-1)/(2-1) = 3; out0 averages in[0:3],
    # out1 covers [3, 6) which is clamped to in[3] three times.
    x = np.array([[0.0, 1.0, 2.0, 3.0]])
    np.testing.assert_allclose(resize(x, (1, 2), "area"), [[1.0, 3.0]])
    # 6 -> 4: scale 5/3; out1 = (1/3*in1 + in2 + 1/3*in3) * 3/5
    m = area_matrix(6, 4)
    np.testing.assert_allclose(m[1, 1:4], [0.2, 0.6, 0.2], atol=1e-6)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)


def test_bicubic_hand_computed():
    # 3 -> 5 with align_corners: scale 0.5. Even outputs sit on input pixels (weights 0,1,0,0);
    # odd ones at delta 0.5 take Keys(a=-0.75) weights (-0.09375, 0.59375, 0.59375, -0.09375).
    x = np.array([[10.0, 20.0, 50.0]])
    out = resize(x, (1, 5), "bicubic")[0]
    w = np.array([-0.09375, 0.59375, 0.59375, -0.09375])
    expected = [
        10.0,
        w @ [10.0, 10.0, 20.0, 50.0],  # index -1 clamped to 0
        20.0,
        w @ [10.0, 20.0, 50.0, 50.0],  # index 3 clamped to 2
        50.0,
    ]
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(bicubic_matrix(37, 240).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "wh, resized, pad",
    [
        ((800, 600), (240, 320), (0, 0, 0, 0)),
        ((600, 800), (240, 180), (0, 0, 70, 70)),
        ((1920, 1080), (180, 320), (30, 30, 0, 0)),
        ((37, 1000), (240, 9), (0, 0, 155, 156)),
    ],
)
def test_geometry_hand_computed(wh, resized, pad):
    w, h = wh
    image = np.full((h, w, 3), 200, np.uint8)
    x, geometry = preprocess(image, (240, 320))
    assert x.shape == (240, 320, 3) and x.dtype == np.float32
    assert geometry.resized == resized and geometry.pad == pad
    top, bottom, left, right = pad
    inside = x[top : 240 - bottom, left : 320 - right]
    assert np.allclose(inside, 200.0, atol=1e-3)  # a flat image stays flat
    if top:
        assert np.all(x[:top] == 126.0) and np.all(x[240 - bottom :] == 126.0)
    if left:
        assert np.all(x[:, :left] == 126.0) and np.all(x[:, 320 - right :] == 126.0)


@pytest.mark.parametrize("wh", [(800, 600), (600, 800), (1920, 1080), (37, 1000), (1000, 37)])
def test_padded_map_crops_back_to_the_image(wh):
    """A model-size map that is 1 on the image and 0 on the padding maps back onto the image
    with the padding cut away: ones everywhere but a blended rim a few pixels wide."""
    w, h = wh
    _, g = preprocess(np.zeros((h, w, 3), np.uint8), (240, 320))
    m = np.zeros((240, 320), np.float32)
    top, bottom, left, right = g.pad
    m[top : 240 - bottom, left : 320 - right] = 1.0
    back = map_to_image(m, (h, w))
    assert back.shape == (h, w)
    scale = max(h / 240, w / 320)
    rim = int(np.ceil(2 * scale)) + 1
    if left:  # padded left/right: only the columns near the cut blend with the padding
        assert np.all(back[:, rim:-rim] >= 0.999)
    if top:
        assert np.all(back[rim:-rim, :] >= 0.999)
    assert back.mean() > 0.95


def test_fit_size_cover_and_minimum_one_pixel():
    assert fit_size((240, 320), (600, 800), cover=True) == (600, 800)
    assert fit_size((240, 320), (1080, 1920), cover=True) == (1440, 1920)
    assert fit_size((1, 10000), (240, 320)) == (1, 320)


def test_size_presets_and_parsing():
    assert parse_size("osie") == SIZE_PRESETS["osie"] == (240, 320)
    assert parse_size("mit1003") == (360, 360)
    assert parse_size("cat2000") == (216, 384)
    assert parse_size("480x640") == (480, 640)
    for bad in ("241x320", "abc", "0x8"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_real_osie_image_round_trip(osie_images):
    image = load_image(osie_images[0])
    assert image.shape == (600, 800, 3)
    x, g = preprocess(image, (240, 320))
    assert g.pad == (0, 0, 0, 0)
    # area downsampling keeps the mean brightness
    assert abs(x.mean() - image.mean()) < 1.0
    back = map_to_image(x[..., 0] / 255.0, g.original)
    assert back.shape == (600, 800)
    # the map of the image's red channel comes back close to the red channel itself
    assert np.corrcoef(back.ravel(), image[..., 0].ravel())[0, 1] > 0.9


def test_map_padding_is_zero():
    m = preprocess_map(np.ones((1080, 1920), np.float32), (240, 320))
    assert m.shape == (240, 320) and np.all(m[:30] == 0) and np.allclose(m[30:210], 1.0)


def test_overlay_and_uint8():
    image = np.full((4, 4, 3), 100, np.uint8)
    sal = np.linspace(0, 1, 16).reshape(4, 4)
    assert to_uint8(sal)[0, 0] == 0 and to_uint8(sal)[3, 3] == 255
    blended = overlay(image, sal, "jet", 0.5)
    assert blended.shape == (4, 4, 3) and np.array_equal(blended[0, 0], image[0, 0])
    # where saliency is high the heat colour shows (jet's top is red); where low, the image
    yy, xx = np.mgrid[:64, :64]
    blob = np.exp(-((yy - 40) ** 2 + (xx - 20) ** 2) / (2 * 6.0**2))
    grey = np.full((64, 64, 3), 128, np.uint8)
    change = np.abs(overlay(grey, blob, "jet", 0.6).astype(int) - grey).sum(axis=2)
    assert change[blob > 0.8].mean() > 3 * change[blob < 0.05].mean()
    peak = overlay(grey, blob, "jet", 0.6)[40, 20]
    assert peak[0] > peak[2] + 30  # red over blue at the most salient pixel
    with pytest.raises(ValueError, match="unknown colormap"):
        overlay(image, sal, "not-a-map")


def test_huge_images_are_resized_in_blocks_with_the_same_result(osie_images):
    """A uint8 image over resize.BLOCK_ELEMENTS is converted to float a block of rows at a
    time (memory, issue 16): the same map as the one-shot float path, to float rounding."""
    from PIL import Image as PILImage

    from msinet.imaging.decode import load_image
    from msinet.imaging.resize import BLOCK_ELEMENTS, resize_tf

    small = PILImage.fromarray(load_image(osie_images[0]))
    big = np.asarray(small.resize((3000, 2000), PILImage.Resampling.BICUBIC))
    assert big.size > BLOCK_ELEMENTS
    blocked = resize_tf(big, (240, 320))
    whole = resize_tf(big.astype(np.float32), (240, 320))
    assert blocked.shape == whole.shape == (240, 320, 3)
    np.testing.assert_allclose(blocked, whole, atol=2e-3)
    # a large output is filled in blocks of rows: the same as two halves made in one block each
    m = np.random.default_rng(0).random((30, 40), np.float32)
    up = resize_tf(m, (4100, 4200))
    halves = [resize_tf(m, (4100, 4200), window=w) for w in ((0, 2050, 0, 4200),
                                                           (2050, 4100, 0, 4200))]  # fmt: skip
    assert up.size > BLOCK_ELEMENTS and up.flags.c_contiguous
    assert np.array_equal(up, np.concatenate(halves))


def test_to_uint8_in_bands_equals_the_formula(monkeypatch):
    from msinet.imaging import postprocess
    from msinet.imaging.postprocess import to_uint8

    m = np.random.default_rng(1).uniform(-0.2, 1.2, (301, 257)).astype(np.float32)
    expected = np.rint(np.clip(m, 0.0, 1.0) * 255.0).astype(np.uint8)
    assert np.array_equal(to_uint8(m), expected)
    monkeypatch.setattr(postprocess, "BAND_ELEMENTS", 1000)  # 3 rows a band
    assert np.array_equal(to_uint8(m), expected)
