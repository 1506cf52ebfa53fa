import json

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models.transform import InputTransform


def ramp(n=2, c=1, h=4, w=4):
    return torch.arange(n * c * h * w, dtype=torch.uint8).reshape(n, c, h, w)


def test_native_scales_and_normalises():
    t = InputTransform(chans=1, mean=(0.5,), std=(0.25,))
    x = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    out = t(x)
    assert out.dtype == torch.float32 and out.shape == (1, 1, 2, 2)
    expected = (torch.tensor([[0, 255], [51, 102]]) / 255 - 0.5) / 0.25
    assert torch.allclose(out[0, 0], expected, atol=1e-6)


def test_zero_pad_is_centred_and_pads_with_pixel_zero():
    t = InputTransform(chans=1, mode="pad", size=(8, 7), mean=(0.0,), std=(1.0,))
    images = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    images[1, 0, 0, 0] = 51
    out = t(images)
    assert out.shape == (2, 1, 8, 7)
    # top = (8-4)//2 = 2, left = (7-4)//2 = 1: rows 2..5, columns 1..4 hold the image
    assert out[0, 0, 2:6, 1:5].eq(1.0).all()
    assert out[0].sum() == 16  # everything else is the zero pixel
    assert out[1, 0, 2, 1] == pytest.approx(0.2)
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 7, 6] == 0 and out[0, 0, 2, 0] == 0 and out[0, 0, 2, 5] == 0


def test_padding_is_normalised_like_a_black_pixel():
    t = InputTransform(chans=1, mode="pad", size=(6, 6), mean=(0.5,), std=(0.5,))
    out = t(torch.full((1, 1, 4, 4), 255, dtype=torch.uint8))
    assert out[0, 0, 0, 0] == -1.0 and out[0, 0, 1, 1] == pytest.approx(1.0)


def test_repeat_one_channel_to_three_with_per_channel_normalisation():
    t = InputTransform(chans=3, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25))
    images = ramp(h=2, w=2)
    out = t(images)
    assert out.shape == (2, 3, 2, 2)
    pixel = images.float() / 255
    assert torch.allclose(out[:, 0], pixel[:, 0], atol=1e-6)
    assert torch.allclose(out[:, 1], (pixel[:, 0] - 0.5) / 0.5, atol=1e-6)
    assert torch.allclose(out[:, 2], (pixel[:, 0] - 1.0) / 0.25, atol=1e-5)


def test_average_three_channels_to_one():
    t = InputTransform(chans=1, mean=(0.0,), std=(1.0,))
    images = torch.zeros(1, 3, 1, 2, dtype=torch.uint8)
    images[0, :, 0, 0] = torch.tensor([30, 60, 90], dtype=torch.uint8)
    out = t(images)
    assert out.shape == (1, 1, 1, 2)
    assert out[0, 0, 0, 0] == pytest.approx(60 / 255) and out[0, 0, 0, 1] == 0


def test_resize_bilinear_up_keeps_a_constant_image_and_the_corners():
    t = InputTransform(chans=1, mode="resize", size=(8, 8), mean=(0.0,), std=(1.0,))
    assert torch.allclose(t(torch.full((1, 1, 4, 4), 102, dtype=torch.uint8)), torch.full((1, 1, 8, 8), 0.4))
    images = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
    images[0, 0, 0, 0] = 255
    out = t(images)
    assert out.shape == (1, 1, 8, 8)
    # half-pixel centres: output pixel 0 maps to input -0.25 (clamped to 0), pixel 7 to 1.25 (clamped to 1)
    assert out[0, 0, 0, 0] == pytest.approx(1.0) and out[0, 0, 7, 7] == pytest.approx(0.0)
    # output pixel 3 maps to (3 + 0.5) / 4 - 0.5 = 0.375: 0.625 of the white pixel in each direction
    assert out[0, 0, 3, 3] == pytest.approx(0.625 * 0.625)


def test_resize_down_averages_blocks():
    t = InputTransform(chans=1, mode="resize", size=(2, 2), mean=(0.0,), std=(1.0,))
    images = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    images[0, 0, :2, :2] = 255  # the top-left 2x2 block is white
    out = t(images)
    assert out[0, 0, 0, 0] > 0.5 and out[0, 0, 1, 1] < 0.1


def test_channels_last_output_when_asked():
    t = InputTransform(chans=3, channels_last=True)
    out = t(ramp(c=1))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, InputTransform(chans=3)(ramp(c=1)))


def test_output_shape_matches():
    t = InputTransform(chans=3, mode="pad", size=(32, 32))
    images = torch.zeros(5, 1, 28, 28, dtype=torch.uint8)
    assert t.output_shape(images.shape) == (5, 3, 32, 32) == tuple(t(images).shape)


def test_round_trip_through_json():
    t = InputTransform(chans=3, mode="resize", size=(75, 75), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6),
                       channels_last=True)
    spec = json.loads(json.dumps(t.to_spec()))
    again = InputTransform.from_spec(spec)
    assert again == t and again.to_spec() == spec
    images = ramp(c=1, h=28, w=28)
    assert torch.equal(again(images), t(images))


def test_scalar_mean_is_broadcast():
    assert InputTransform(chans=3, mean=0.5, std=0.5).mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "crop", "size": (2, 2)}, "'mode' parameter"),
    ({"mode": "pad"}, "'size' parameter"),
    ({"mode": "native", "size": (2, 2)}, "'size' parameter"),
    ({"chans": 3, "mean": (0.5, 0.5)}, "'mean' parameter"),
    ({"std": (0.0,)}, "'std' parameter"),
])
def test_bad_transforms(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        InputTransform(**kwargs)


def test_bad_inputs_and_spec():
    with pytest.raises(ConfigError, match="uint8"):
        InputTransform()(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ConfigError, match="cannot zero-pad"):
        InputTransform(mode="pad", size=(2, 2))(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="2-channel"):
        InputTransform(chans=3)(torch.zeros(1, 2, 4, 4, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="valid options: channels_last, chans"):
        InputTransform.from_spec({"chans": 1, "colour": True})
