import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from msinet.imaging.decode import ImageError, ImageTooLarge, load_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: a decompression bomb's signature."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_real_osie_jpeg(osie_images):
    image = load_image(osie_images[1])
    assert image.shape == (600, 800, 3) and image.dtype == np.uint8
    assert load_image(osie_images[1].read_bytes()).tobytes() == image.tobytes()


def test_grayscale_becomes_three_equal_channels():
    img = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, mode="L")
    out = load_image(encode(img, "PNG"))
    assert out.shape == (3, 4, 3) and np.array_equal(out[..., 0], out[..., 2])


def test_rgba_transparency_is_composited_over_white():
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)  # opaque red, the rest fully transparent black
    out = load_image(encode(Image.fromarray(a, "RGBA"), "PNG"))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)


def test_palette_cmyk_and_16bit():
    pal = Image.fromarray(np.full((5, 5, 3), (10, 200, 30), np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE
    )
    assert tuple(load_image(encode(pal, "PNG"))[2, 2]) == (10, 200, 30)
    cmyk = Image.new("CMYK", (6, 4), (0, 255, 255, 0))  # pure red in CMYK
    red = load_image(encode(cmyk, "JPEG", quality=100))
    assert red.shape == (4, 6, 3) and red[..., 0].min() > 200 and red[..., 1].max() < 60
    deep = Image.fromarray(np.full((3, 3), 65535, np.uint16))
    out = load_image(encode(deep, "PNG"))
    assert out.dtype == np.uint8 and np.all(out == 255)


def test_exif_orientation_is_applied():
    a = np.zeros((2, 4, 3), np.uint8)  # 2 rows x 4 columns as stored
    img = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.shape == (4, 2, 3)


def test_tiny_images_pass_and_degenerate_strips_are_refused():
    """A 1x1 image is scaled up and works; a strip that would be under 8 px at the model's
    input (1x5000 -> 1x320) is refused in words (issue 16: such files exhausted memory)."""
    from msinet.imaging.postprocess import map_to_image
    from msinet.imaging.preprocess import preprocess

    for shape in [(1, 1), (7, 9), (30, 1000)]:
        image = load_image(encode(Image.fromarray(np.full((*shape, 3), 90, np.uint8)), "PNG"))
        x, g = preprocess(image, (240, 320))
        assert x.shape == (240, 320, 3)
        assert map_to_image(np.ones((240, 320), np.float32), g.original).shape == shape
    for shape in [(1, 5000), (3000, 2)]:
        image = load_image(encode(Image.fromarray(np.full((*shape, 3), 90, np.uint8)), "PNG"))
        with pytest.raises(ImageError, match="too thin"):
            preprocess(image, (240, 320))
        assert map_to_image(np.ones((240, 320), np.float32), shape).shape == shape


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "zero bytes"),
        (b"hello, this is text and not an image\n" * 10, "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not an image|corrupt"),
    ],
)
def test_bad_bytes(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_text_file_named_jpg_and_truncated_jpeg(tmp_path, osie_images):
    fake = tmp_path / "fake.jpg"
    fake.write_text("definitely not a jpeg")
    with pytest.raises(ImageError, match="not an image"):
        load_image(fake)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(osie_images[0].read_bytes()[:4000])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(cut)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="zero bytes"):
        load_image(empty)


def test_huge_declared_size_is_refused_before_decoding():
    with pytest.raises(ImageTooLarge, match="exceeds"):
        load_image(png_with_declared_size(100_000, 100_000))
    with pytest.raises(ImageTooLarge):
        load_image(png_with_declared_size(3000, 3000), max_pixels=1_000_000)


def test_large_images_are_copied_out_in_strips_exactly(osie_images):
    from PIL import Image as PILImage

    from msinet.imaging.decode import STRIP_ROWS, pixels

    img = PILImage.open(osie_images[0]).convert("RGB").resize((2100, 1900))
    assert img.width * img.height > STRIP_ROWS * 4096
    out = pixels(img)
    assert out.flags.writeable and np.array_equal(out, np.array(img))


def test_a_jpeg_that_declares_more_pixels_than_its_data_can_hold(tmp_path, osie_images):
    """A real OSIE JPEG whose frame header is patched from 800x600 to 7000x7000: libjpeg
    would fill the rest with grey; msinet refuses it, from a file and from bytes. The floor is
    one bit per 8x8 block, so the flattest real JPEGs of that size pass."""
    data = bytearray(osie_images[0].read_bytes())
    sof = data.find(b"\xff\xc0")
    assert struct.unpack(">HH", data[sof + 5 : sof + 9]) == (600, 800)
    data[sof + 5 : sof + 9] = struct.pack(">HH", 7000, 7000)
    lying = tmp_path / "lying.jpg"
    lying.write_bytes(bytes(data))
    for source in (lying, bytes(data)):
        with pytest.raises(ImageError, match="declares 7000x7000, which needs at least"):
            load_image(source)
    for mode, options in (("L", {"progressive": True, "optimize": True, "quality": 1}),
                          ("RGB", {"optimize": True, "quality": 1})):  # fmt: skip
        buf = io.BytesIO()
        Image.new(mode, (3000, 3000), 128 if mode == "L" else (128, 128, 128)).save(
            buf, "JPEG", **options
        )
        assert load_image(buf.getvalue()).shape == (3000, 3000, 3)
