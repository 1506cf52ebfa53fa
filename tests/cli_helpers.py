"""Running the command line in-process (typer's CliRunner), stdout and stderr kept apart."""

from __future__ import annotations

from typer.testing import CliRunner


def cli_runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2 mixes stderr into output unless told not to
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps result.stderr apart (result.output interleaves both)


def invoke_cli(*args):
    from cnnlab.cli import app

    return cli_runner().invoke(app, [str(a) for a in args])
