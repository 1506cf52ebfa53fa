"""The timm:/tv: adapters: channels, classes, input limits and local pretrained weights."""

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.errors import ConfigError, DownloadError, UnknownNameError
from cnnlab.models import create_model
from cnnlab.models.weights import default_weights_path

pytestmark = pytest.mark.usefixtures("weights_home")  # every test here: an empty weights folder (conftest.py)


@pytest.mark.parametrize("name", ["timm:resnet18", "tv:resnet18"])
def test_resnet18_for_one_channel_and_seven_classes(name):
    built = create_model(name, num_classes=7, in_chans=1, input_size=28)
    model = built.module
    assert model.conv1.in_channels == 1 and model.fc.out_features == 7
    assert built.transform.mode == "native" and built.transform.chans == 1
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    out = model(built.transform(images))
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    assert model.conv1.weight.grad is not None
    # the zoo's normalisation preset, averaged over the three ImageNet channels
    assert built.transform.mean == pytest.approx((sum((0.485, 0.456, 0.406)) / 3,))


def test_tv_families_get_their_stem_and_head_adapted():
    for name, head in [("tv:squeezenet1_1", lambda m: m.classifier[1].out_channels),
                       ("tv:mobilenet_v3_small", lambda m: m.classifier[-1].out_features),
                       ("tv:shufflenet_v2_x0_5", lambda m: m.fc.out_features)]:
        built = create_model(name, num_classes=5, in_chans=1, input_size=28)
        assert head(built.module) == 5
        first_conv = next(m for m in built.module.modules() if isinstance(m, torch.nn.Conv2d))
        assert first_conv.in_channels == 1
        assert built.module(built.transform(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))).shape == (2, 5)


def test_keeping_three_model_channels_repeats_grey_images():
    built = create_model("tv:resnet18", 7, 1, 28, model_in_chans=3)
    assert built.module.conv1.in_channels == 3 and built.transform.chans == 3
    assert built.input_shape == (3, 28, 28)


def test_unknown_zoo_names_suggest_close_ones():
    with pytest.raises(UnknownNameError, match="timm:resnet18"):
        create_model("timm:resnet81", 10)
    with pytest.raises(UnknownNameError, match="tv:alexnet"):
        create_model("tv:alexnett", 10)


def test_bad_model_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="rejected model_kwargs"):
        create_model("timm:resnet18", 10, model_kwargs={"wings": 2})
    assert create_model("timm:resnet18", 10, model_kwargs={"drop_rate": 0.3}).module.drop_rate == 0.3


def test_pretrained_offline_without_a_file_says_where_to_put_it(weights_home):
    with pytest.raises(DownloadError, match="CNNLAB_OFFLINE") as info:
        create_model("tv:resnet18", 7, 1, 28, pretrained=True)
    message = str(info.value)  # the file, its URL and where to put it
    assert str(weights_home / "tv" / "resnet18.safetensors") in message and "pretrained=PATH" in message
    assert "https://download.pytorch.org/models/resnet18" in message
    with pytest.raises(ConfigError, match="does not exist"):
        create_model("tv:resnet18", 7, 1, 28, pretrained=True, weights="/nowhere/w.safetensors")


@pytest.mark.parametrize("name", ["tv:resnet18", "timm:resnet18"])
def test_local_pretrained_weights_are_adapted_to_grey_input_and_new_classes(name):
    torch.manual_seed(0)
    source = create_model(name, num_classes=1000, in_chans=3).module.eval()
    path = default_weights_path(*name.split(":"))
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))

    built = create_model(name, num_classes=7, in_chans=1, input_size=28, pretrained=True)
    model = built.module.eval()
    assert torch.allclose(model.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert model.fc.out_features == 7  # a fresh head
    # a grey image through the adapted stem gives the features of that image repeated in RGB
    grey = torch.rand(2, 1, 32, 32)
    features = lambda m, x: m.forward_features(x) if hasattr(m, "forward_features") else \
        torch.nn.Sequential(*list(m.children())[:-2])(x)  # noqa: E731
    assert torch.allclose(features(model, grey), features(source, grey.expand(-1, 3, -1, -1)), atol=1e-4)


def test_weights_option_takes_a_file_anywhere(tmp_path):
    saved = create_model("tv:squeezenet1_1", 10, 1, 28).module
    path = tmp_path / "mine.safetensors"
    save_file(saved.state_dict(), str(path))
    built = create_model("tv:squeezenet1_1", 10, 1, 28, weights=str(path))
    assert built.spec["options"] == {"weights": str(path)}
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in built.module.state_dict().items())


def test_a_wrong_weights_file_is_refused(tmp_path):
    path = tmp_path / "lenet.safetensors"
    save_file(create_model("lenet5", 10).module.state_dict(), str(path))
    with pytest.raises(ConfigError, match="do not fit the model: the model's .* are not in the file .a safetensors file is matched by name"):
        create_model("tv:resnet18", 10, weights=str(path))


def test_fixed_size_models_are_resized_to_their_size():
    built = create_model("timm:vit_tiny_patch16_224", 10, 1, 28, device="meta")
    assert (built.transform.mode, built.transform.size) == ("resize", (224, 224))
    built = create_model("tv:vit_b_16", 10, 1, 28, device="meta")
    assert (built.transform.mode, built.transform.size) == ("resize", (224, 224))
