import re

import pytest
from typer.testing import CliRunner

from cnnlab.cli import app

runner = CliRunner()


def test_models_summary_prints_the_lenet5_layer_table():
    result = runner.invoke(app, ["models", "summary", "lenet5", "--data", "digits"])
    assert result.exit_code == 0, result.output
    assert "Conv2d" in result.output and "Linear" in result.output
    assert "digits: 10 classes, 1×8×8" in result.output


def test_models_list_sizes_every_curated_model_for_the_data():
    from cnnlab.models import MODELS, profile_model

    result = runner.invoke(app, ["models", "list", "--data", "digits"])
    assert result.exit_code == 0, result.output
    for name in MODELS.names():
        assert name in result.output
    assert f"{profile_model('rescnn', 10, 1, 8).params:,}" in result.output


def test_unknown_model_is_one_line_and_exit_2():
    result = runner.invoke(app, ["models", "summary", "resnet5"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown model 'resnet5': did you mean 'resnet50'")
    assert len(result.stderr.strip().splitlines()) == 1


# ---- trainable and frozen counts, transfer options ----------------------------------------------------


def summary_counts(output: str) -> dict[str, int]:
    """The Keras-style totals under the layer table: {'Total': ..., 'Trainable': ..., 'Non-trainable': ...}."""
    found = re.findall(r"^(Total|Trainable|Non-trainable) params: ([\d,]+)$", output, re.M)
    return {kind: int(count.replace(",", "")) for kind, count in found}


def test_models_summary_counts_trainable_and_non_trainable_params(cli):
    result = cli("models", "summary", "lenet5", "--data", "digits")
    assert result.exit_code == 0, result.stderr
    assert summary_counts(result.stdout) == {"Total": 21_386, "Trainable": 21_386, "Non-trainable": 0}


def test_a_frozen_backbone_leaves_only_the_head_trainable(cli):
    import timm

    result = cli("models", "summary", "efficientnet_lite0", "--set", "pretrained=true", "--set", "finetune=frozen",
                 "--set", "head=linear", "--depth", 1)
    assert result.exit_code == 0, result.stderr
    # by hand: a Linear from the 1280 pooled features to 10 classes; the backbone is timm's without its classifier
    head = 1280 * 10 + 10
    backbone = sum(p.numel() for p in timm.create_model("efficientnet_lite0", num_classes=0, in_chans=1).parameters())
    assert summary_counts(result.stdout) == {"Total": backbone + head, "Trainable": head, "Non-trainable": backbone}
    assert re.search(rf"^head\s+Sequential\s+\[1, 10\]\s+{head:,}$", result.stdout, re.M)


def test_set_values_are_read_as_yaml(cli):
    result = cli("models", "summary", "efficientnet_lite0", "--set", "model.finetune=frozen", "--set", "head=[256]",
                 "--set", "target_size=64")
    assert result.exit_code == 0, result.stderr
    head = 1280 * 256 + 256 + 256 * 10 + 10  # hidden Linear to 256, then Linear to the 10 classes
    assert summary_counts(result.stdout)["Trainable"] == head
    assert "'size': [64, 64]" in " ".join(result.stdout.split())
    gradual = cli("models", "summary", "lenet5", "--set", "finetune=gradual", "--set", "unfreeze_epoch=3")
    assert gradual.exit_code == 0, gradual.stderr
    assert summary_counts(gradual.stdout)["Trainable"] == 84 * 10 + 10  # LeNet-5's 84 features, a new head
    assert "the counts above hold for epochs 1–3; after that all 61,706 parameters train" in gradual.stdout


@pytest.mark.parametrize(("setting", "fragments"), [
    ("head", ["--set 'head' is not key=value", "--set finetune=frozen"]),
    ("=frozen", ["is not key=value"]),
    ("head=[256", ["--set 'head=[256': the value is not valid YAML", "[1024, 512]"]),
    ("finetune=most", ["finetune must be one of all, frozen, last:N", "'most'"]),
    ("widht=3", ["widht"]),
])
def test_a_bad_setting_is_a_one_line_error(cli, setting, fragments):
    result = cli("models", "summary", "lenet5", "--set", setting)
    assert result.exit_code == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr


def test_train_prints_how_many_parameters_train(cli, tmp_path):
    frozen = cli("train", "--data", "digits", "--model", "lenet5", "--epochs", 1, "--threads", 1, "-q",
                 "model.finetune=frozen", "--out", tmp_path / "frozen")
    assert frozen.exit_code == 0, frozen.stderr
    assert "21,386 parameters (850 trainable) · " in frozen.stdout
    whole = cli("train", "--data", "digits", "--model", "lenet5", "--epochs", 1, "--threads", 1, "-q",
                "--out", tmp_path / "whole")
    assert whole.exit_code == 0, whole.stderr
    assert "21,386 parameters · " in whole.stdout and "trainable" not in whole.stdout
