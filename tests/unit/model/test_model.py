import numpy as np
import pytest
import torch

from msinet.model.net import (
    MSINet,
    MSINetConfig,
    count_parameters,
    init_weights,
    max_pool_same,
    normalize_minmax,
    official_name,
    upsample2x_tf,
)


def test_parameter_count_matches_paper(random_model):
    assert count_parameters(random_model) == 24_934_209


def official_variables() -> dict[str, tuple[int, ...]]:
    """The official graph's variables with their TF (HWIO) kernel shapes, from model.py."""
    layers = {}
    vgg = [(1, 3, 64, 2), (2, 64, 128, 2), (3, 128, 256, 3), (4, 256, 512, 3), (5, 512, 512, 3)]
    for b, cin, cout, n in vgg:
        for i in range(n):
            layers[f"conv{b}/conv{b}_{i + 1}"] = (3, 3, cin if i == 0 else cout, cout)
    layers["aspp/conv1_1"] = (1, 1, 1280, 256)
    for i in (2, 3, 4):
        layers[f"aspp/conv1_{i}"] = (3, 3, 1280, 256)
    layers["aspp/conv1_5"] = (1, 1, 1280, 256)
    layers["aspp/conv2"] = (1, 1, 1280, 256)
    for i, (cin, cout) in enumerate([(256, 128), (128, 64), (64, 32), (32, 1)], start=1):
        layers[f"decoder/conv{i}"] = (3, 3, cin, cout)
    out = {}
    for name, shape in layers.items():
        out[f"{name}/kernel"] = shape
        out[f"{name}/bias"] = (shape[-1],)
    return out


def test_layer_names_map_one_to_one_onto_official_variables(random_model):
    expected = official_variables()
    ours = {official_name(k): tuple(v.shape) for k, v in random_model.state_dict().items()}
    assert set(ours) == set(expected)
    assert len(ours) == len(random_model.state_dict()) == 46
    for name, shape in expected.items():
        oihw = shape if len(shape) == 1 else (shape[3], shape[2], shape[0], shape[1])
        assert ours[name] == oihw, name


SLOW = pytest.mark.slow


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize(
    "shape", [(1, 240, 320), pytest.param((2, 360, 360), marks=SLOW), (1, 216, 384), (3, 64, 96)]
)
def test_shapes_and_output_range(random_model, shape, train):
    b, h, w = shape
    torch.manual_seed(1)
    x = torch.rand(b, 3, h, w) * 255
    random_model.train(train)
    try:
        with torch.no_grad():
            feats = random_model.forward_features(x)
            raw = random_model.forward_head(feats)
            out = random_model(x)
    finally:
        random_model.eval()
    assert feats.shape == (b, 1280, h // 8, w // 8)
    assert raw.shape == out.shape == (b, 1, h, w)
    flat = out.flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(b))
    assert torch.allclose(flat.max(1).values, torch.ones(b), atol=1e-5)
    assert torch.allclose(out, normalize_minmax(raw))


def test_rejects_sizes_that_are_not_multiples_of_8(random_model):
    with pytest.raises(ValueError, match="multiples of 8"):
        random_model(torch.zeros(1, 3, 100, 120))


def test_tf1_bilinear_hand_computed():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    # TF1 resize_bilinear (align_corners=False, half_pixel_centers=False): out i samples in i/2,
    # the upper neighbour clamped to the last row/column.
    expected = torch.tensor(
        [
            [1.0, 1.5, 2.0, 2.0],
            [2.0, 2.5, 3.0, 3.0],
            [3.0, 3.5, 4.0, 4.0],
            [3.0, 3.5, 4.0, 4.0],
        ]
    )
    assert torch.equal(upsample2x_tf(x)[0, 0], expected)
    # and it is not PyTorch's half-pixel bilinear
    torch_default = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")
    assert not torch.allclose(torch_default[0, 0], expected)


def tf1_resize_bilinear_reference(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1's legacy kernel written out: in = out * in_size / out_size, lerp to floor+1."""
    h, w = x.shape[-2:]
    out = np.zeros((*x.shape[:-2], out_h, out_w))
    for i in range(out_h):
        y = i * h / out_h
        y0, dy = int(np.floor(y)), y - np.floor(y)
        y1 = min(y0 + 1, h - 1)
        for j in range(out_w):
            xx = j * w / out_w
            x0, dx = int(np.floor(xx)), xx - np.floor(xx)
            x1 = min(x0 + 1, w - 1)
            top = x[..., y0, x0] + (x[..., y0, x1] - x[..., y0, x0]) * dx
            bottom = x[..., y1, x0] + (x[..., y1, x1] - x[..., y1, x0]) * dx
            out[..., i, j] = top + (bottom - top) * dy
    return out


def test_tf1_bilinear_matches_reference_on_random_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 7)).astype(np.float32)
    ours = upsample2x_tf(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, tf1_resize_bilinear_reference(x, 10, 14), atol=1e-6)


def test_pool_same_pads_bottom_right_only():
    x = torch.tensor([[1.0, 5.0, 2.0], [0.0, 3.0, 9.0], [4.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    # each output is the max of its 2x2 window, windows running off the bottom/right edge
    expected = torch.tensor([[5.0, 9.0, 9.0], [4.0, 9.0, 9.0], [4.0, 1.0, 0.0]])
    assert torch.equal(max_pool_same(x)[0, 0], expected)


def test_encoder_resolution_after_same_pools(random_model):
    x = torch.rand(1, 3, 48, 64) * 255
    with torch.no_grad():
        assert random_model.forward_features(x).shape[-2:] == (6, 8)


def test_input_order_rgb_equals_bgr_with_flipped_first_layer(random_model):
    """Official weights expect RGB minus the BGR means; flipping conv1_1 and the mean must turn
    our BGR model into that convention exactly."""
    rgb = MSINet(MSINetConfig(input_order="rgb", mean=(123.68, 116.779, 103.939)))
    state = dict(random_model.state_dict())
    state["encoder.conv1.conv1_1.weight"] = state["encoder.conv1.conv1_1.weight"].flip(1)
    rgb.load_state_dict(state)
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        torch.testing.assert_close(rgb.eval()(x), random_model(x), atol=1e-5, rtol=0)


def test_init_is_glorot_uniform_with_zero_bias():
    torch.manual_seed(0)
    model = MSINet()
    init_weights(model)
    w = model.aspp.conv2.weight  # fan_in = fan_out-ish: 1280 in, 256 out, 1x1
    bound = (6 / (1280 + 256)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert torch.count_nonzero(model.decoder.conv4.bias) == 0


def test_the_architecture_spec_is_the_model_key_by_key(random_model):
    """msinet.model.arch (torch-free) states every parameter; the torch model builds from it."""
    from msinet.model.arch import parameter_shapes

    spec = parameter_shapes()
    state = {k: tuple(v.shape) for k, v in random_model.state_dict().items()}
    assert list(spec) == list(state)
    for key, shape in spec.items():
        assert state[key] == shape, key
    assert sum(int(np.prod(s)) for s in spec.values()) == 24_934_209


def test_official_names_need_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from msinet.weights.official.mapping import expected_variables\n"
        "from msinet.weights.onnx_graph import build_graph\n"
        "names = expected_variables(); assert len(names) == 46, len(names)\n"
        "assert names['conv5/conv5_3/kernel'] == 'encoder.conv5.conv5_3.weight'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
