"""The command line: typer commands that parse their arguments, make one call of the public API
(cnnlab.api) and print its result. One module per group of verbs."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from ..errors import CnnlabError


class _Group(TyperGroup):
    """Turns every failure into one line on stderr and its exit code (2, or the error's own exit_code);
    `--traceback` shows the trace instead. A bare KeyboardInterrupt passes through untouched."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except _CLICK_ERROR as exc:  # a bad flag or argument: click's usage box becomes one line
            if (ctx.obj or {}).get("traceback"):
                raise
            where = getattr(exc, "ctx", None)
            hint = f"; see `{where.command_path} --help`" if where is not None else ""
            _fail(f"{exc.format_message().rstrip('.')}{hint}", 2)
        except CnnlabError as exc:
            if (ctx.obj or {}).get("traceback"):
                raise
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:  # a bare Ctrl-C passes; one that says how to resume is its message
            if (ctx.obj or {}).get("traceback") or getattr(exc, "exit_code", None) is None or not str(exc):
                raise
            _fail(str(exc), exc.exit_code)
        except OSError as exc:
            if (ctx.obj or {}).get("traceback"):
                raise
            _fail(_describe_os_error(exc), 2)
        except Exception as exc:  # a bug, not the user's doing: say so, and how to see where
            if (ctx.obj or {}).get("traceback"):
                raise
            text = _one_line(str(exc))
            text = text if len(text) <= 300 else text[:297] + "..."
            _fail(f"unexpected {type(exc).__name__}: {text}; rerun with --traceback to see where", 2)


# newer typer releases vendor click: its exception classes are found through typer's own
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_PASS_THROUGH = (typer.Exit, typer.Abort, *(getattr(sys.modules[_CLICK_ERROR.__module__], name)
                                            for name in ("NoArgsIsHelpError",)
                                            if hasattr(sys.modules[_CLICK_ERROR.__module__], name)))


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _fail(message: str, code: int):
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code) from None


_OS_FIXES = {  # errno name -> what to do about it
    "EACCES": "check its permissions or choose another path",
    "EPERM": "check its permissions or choose another path",
    "EROFS": "it is on a read-only file system; choose another path",
    "EISDIR": "it is a folder; give a file",
    "ENOTDIR": "a part of the path is a file, not a folder; choose another path",
    "ENOENT": "check the path",
    "ENOSPC": "the disk is full; free some space or write elsewhere",
    "EDQUOT": "the disk quota is exhausted; free some space or write elsewhere",
    "EEXIST": "remove it or choose another path",
    "ENAMETOOLONG": "choose a shorter path",
    "EMFILE": "too many open files; raise the limit (ulimit -n) or close other programs",
    "EPIPE": "the program reading the output stopped early",
}


def _describe_os_error(exc: OSError) -> str:
    """'FILE: reason; fix' for an OSError (permission denied, is a directory, disk full, ...)."""
    import errno

    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    name = errno.errorcode.get(exc.errno or -1, "")
    fix = _OS_FIXES.get(name, "check the path and its permissions")
    files = [f for f in (exc.filename, getattr(exc, "filename2", None)) if f is not None]
    where = " -> ".join(str(f) for f in files)
    return f"{where}: {reason.lower()}; {fix}" if where else f"{reason.lower()}; {fix}"


app = typer.Typer(cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  help="cnnlab: train, compare, ablate and analyse CNN image classifiers.")


@app.callback()
def _root(ctx: typer.Context, traceback: bool = typer.Option(False, "--traceback", help="Show the full trace on errors.")):
    ctx.obj = {"traceback": traceback}


from . import analysis, data, models, runs, study  # noqa: E402  (each registers its commands on app)

app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(study.app, name="study")
runs.register(app)
analysis.register(app)
app.command()(study.quickstart)


def main() -> None:
    app()


__all__ = ["app", "main"]
