"""cnnlab models list | summary."""

from __future__ import annotations

import typer

from .output import console, table

app = typer.Typer(no_args_is_help=True, help="List, size and inspect models.")


def _data_shape(data: str | None) -> tuple[int, int, int, str]:
    """(classes, channels, size, label) of a dataset on this machine, or MNIST's shape without one."""
    if data is None:
        return 10, 1, 28, "10 classes, 1×28×28"
    from ..api import load_dataset

    dataset = load_dataset(data, download=False)
    c, h, w = dataset.image_shape
    return dataset.num_classes, c, h, f"{data}: {dataset.num_classes} classes, {c}×{h}×{w}"


@app.command("list")
def models_list(
    data: str = typer.Option(None, "--data", "-d", help="Size the models for this dataset (default 1×28×28, 10 classes)."),
    all_models: bool = typer.Option(False, "--all", help="Also list every timm: and tv: name."),
):
    """The curated models with parameters, MACs and weight size at the data's input size (meta device).

    Example: cnnlab models list --data emnist-balanced
    """
    from rich.progress import track

    from ..models import MODELS, list_models, profile_model

    classes, chans, size, label = _data_shape(data)
    rows = []
    for name, entry in track(MODELS.items(), description="sizing models", transient=True, console=console):
        prof = profile_model(name, classes, chans, size)
        rows.append([name, entry.impl, f"{prof.params:,}", f"{prof.macs / 1e6:,.1f} M", f"{prof.size_mb:.2f}",
                     entry.about])
    console.print(table(f"curated models ({label}; counted on the meta device, no weights allocated)",
                        ["name", "implementation", "params", "MACs", "MB", "about"], rows, left=(0, 1, 5),
                        no_wrap=(0,)))
    if all_models:
        zoo = [n for n in list_models(all=True) if ":" in n]
        console.print(f"{len(zoo)} zoo names: " + " ".join(zoo))


@app.command("summary")
def models_summary(
    name: str,
    data: str = typer.Option(None, "--data", "-d", help="Dataset whose classes and image shape the model gets."),
    depth: int = typer.Option(None, help="Show layers down to this nesting depth."),
    settings: list[str] = typer.Option(None, "--set", help="A model option as KEY=VALUE, the value read as YAML "
                                                           "(--set finetune=frozen --set head=[256]); repeatable."),
):
    """A layer table like Keras' model.summary(): layer, type, output shape, parameters, then the
    total, trainable and non-trainable parameter counts.

    Example: cnnlab models summary rescnn --data emnist-balanced
    Example: cnnlab models summary efficientnet_lite0 --data cifar10 --set pretrained=true --set finetune=frozen
    """
    from ..api import create_model
    from ..config import parse_assignments
    from ..models import format_table, layer_table, profile_module

    assignments = parse_assignments(settings, "--set", "KEY=VALUE (e.g. --set finetune=frozen)", strict=True)
    options = {key.removeprefix("model."): value for key, value in assignments}
    classes, chans, size, label = _data_shape(data)
    built = create_model(name, classes, chans, size, device="meta", **options)
    profile = profile_module(built.module, built.input_shape)
    console.print(f"[bold]{name}[/] ({label}); input transform: {built.transform.to_spec()}")
    typer.echo(format_table(layer_table(built.module, built.input_shape, depth)))
    typer.echo(f"Total params: {profile.params:,}\n"
               f"Trainable params: {profile.trainable_params:,}\n"
               f"Non-trainable params: {profile.params - profile.trainable_params:,}\n"
               f"MACs per image of {'x'.join(map(str, profile.input_shape))}: {profile.macs:,}\n"
               f"Weight size: {profile.size_mb:.2f} MB")
    if options.get("finetune") == "gradual":  # the counts above are those of the first epochs
        frozen_for = options.get("unfreeze_epoch", 1)
        epochs = "epoch 1" if frozen_for == 1 else f"epochs 1–{frozen_for}"
        typer.echo(f"finetune=gradual: the counts above hold for {epochs}; after that all {profile.params:,} "
                   f"parameters train")
