"""model_kwargs reach timm / torchvision constructors, so they are allow-listed: a config, a study
file or a run folder's model.json from elsewhere can shape the network but never name a file or URL
(timm's checkpoint_path would torch.load() whatever it points at)."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import assert_one_line_error
from model_helpers import write_payload

from cnnlab.errors import ConfigError
from cnnlab.experiments.run import train_run
from cnnlab.models import create_model, model_from_spec
from cnnlab.models.factory import MODEL_KWARGS

TINY = {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "batch_size": 64, "threads": 1}}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished tiny run (LeNet-5, digits, one epoch)."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("kwargs-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        result = train_run(TINY, tmp_path_factory.mktemp("kwargs") / "run", progress=False)
    torch.set_num_threads(threads)
    return result.path


@pytest.mark.parametrize("key, value", [
    ("checkpoint_path", "/tmp/weights.pth"), ("pretrained_cfg", {"file": "/tmp/w.pth"}),
    ("pretrained_cfg_overlay", {"url": "http://example.invalid/w.pth"}), ("cache_dir", "/tmp"),
    ("pretrained_strict", False), ("features_only", True),
])
def test_model_kwargs_that_load_or_fetch_are_refused_naming_the_key_and_the_allowed_ones(key, value):
    with pytest.raises(ConfigError) as info:
        create_model("timm:resnet18", 10, model_kwargs={key: value})
    message = str(info.value)
    assert f"rejected model_kwargs key {key!r}" in message and "\n" not in message
    assert "drop_path_rate" in message and "stochastic_depth_prob" in message  # the allowed keys


def test_model_kwargs_values_are_json_scalars():
    with pytest.raises(ConfigError, match=r"drop_rate=\[0.1\]: its value must be a number"):
        create_model("timm:resnet18", 10, model_kwargs={"drop_rate": [0.1]})
    with pytest.raises(ConfigError, match="model_kwargs.*mapping"):
        create_model("timm:resnet18", 10, model_kwargs=["drop_rate"])


@pytest.mark.parametrize("name, kwargs, check", [
    ("timm:resnet18", {"drop_rate": 0.3, "drop_path_rate": 0.1, "drop_block_rate": 0.05, "global_pool": "max"},
     lambda m: m.drop_rate == 0.3 and m.global_pool.pool_type == "max"),
    ("mobilenet_v2", {"width_mult": 0.5, "dropout": 0.1}, lambda m: m.classifier[0].p == 0.1),
    ("efficientnet_b0", {"stochastic_depth_prob": 0.1, "dropout": 0.3}, lambda m: m.classifier[0].p == 0.3),
    ("densenet121", {"drop_rate": 0.1, "memory_efficient": True}, lambda m: True),
    ("tv:vit_b_16", {"attention_dropout": 0.1, "dropout": 0.1}, lambda m: m.attention_dropout == 0.1),
])
def test_options_that_shape_the_network_still_reach_the_constructor(name, kwargs, check):
    assert set(kwargs) <= set(MODEL_KWARGS)
    built = create_model(name, 10, 3, 224 if "vit" in name else 64, device="meta", model_kwargs=kwargs)
    assert check(built.module)


def test_a_run_folder_whose_model_json_names_a_checkpoint_is_refused_at_evaluate(run_folder, tmp_path, cli):
    payload, sentinel = write_payload(tmp_path)
    spec_file = run_folder / "model.json"
    original = spec_file.read_text()
    spec = json.loads(original)  # the run's, its model swapped for a timm one whose model_kwargs name the pickle
    timm = create_model("timm:resnet18", spec["num_classes"], spec["in_chans"], tuple(spec["input_size"]),
                        device="meta", model_kwargs={"drop_rate": 0.1}).spec
    spec.update({key: timm[key] for key in ("name", "impl", "options", "transform")})
    spec["options"]["model_kwargs"]["checkpoint_path"] = str(payload)
    try:
        spec_file.write_text(json.dumps(spec))
        result = cli("evaluate", run_folder)
        assert_one_line_error(result, str(spec_file), "rejected model_kwargs key 'checkpoint_path'", "drop_rate")
        assert "Traceback" not in result.stderr
        with pytest.raises(ConfigError, match=r"^model 'timm:resnet18' rejected model_kwargs key 'checkpoint_path'"):
            model_from_spec(spec)
        with pytest.raises(ConfigError, match=f"^{spec_file}: "):
            model_from_spec(spec, where=str(spec_file))
    finally:
        spec_file.write_text(original)
    assert not sentinel.exists()
    assert cli("evaluate", run_folder).exit_code == 0  # the folder as trained evaluates


def test_a_config_with_a_checkpoint_in_model_kwargs_is_refused_at_train_time(tmp_path, cli):
    payload, sentinel = write_payload(tmp_path)
    config = {"data": "digits", "model": {"name": "timm:resnet18", "model_kwargs": {"checkpoint_path": str(payload)}},
              "train": {"epochs": 1, "threads": 1}}
    with pytest.raises(ConfigError, match="rejected model_kwargs key 'checkpoint_path'"):
        train_run(config, tmp_path / "run", progress=False)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    result = cli("train", "-c", config_file, "--out", tmp_path / "cli-run")
    assert_one_line_error(result, "rejected model_kwargs key 'checkpoint_path'")
    assert not sentinel.exists()
    assert not (tmp_path / "run" / "weights.safetensors").exists()
