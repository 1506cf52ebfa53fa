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
