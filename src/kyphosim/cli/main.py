"""Entry point of the ``kyphosim`` command.

Each sub-command lives in its own module of this package and exposes ``register(app)``. Errors a
user can fix (:class:`kyphosim.errors.KyphosimError`) become one readable line on stderr and exit
code 2; no traceback is shown unless ``KYPHOSIM_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import typer

from kyphosim.errors import KyphosimError

app = typer.Typer(
    name="kyphosim",
    help="Balloon kyphoplasty in software: assess → decide → plan → simulate → strength → care → report. "
         "Research use only — not a medical device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

@app.callback()
def _root() -> None:
    """Balloon kyphoplasty in software. Research use only — not a medical device."""


# sub-command modules, in pipeline order; each defines register(app)
COMMAND_MODULES = ["info", "phantom", "segment", "assess", "decide", "plan", "fluoro", "simulate",
                   "compare", "strength", "care", "outcome", "run", "demo"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        modname = f"kyphosim.cli.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(app)


_register_all()


def fail(message: str, code: int = 2) -> None:
    """Print one line ``kyphosim: error: ...`` and exit with ``code``."""
    typer.echo(f"kyphosim: error: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 bad input, 1 internal error)."""
    debug = os.environ.get("KYPHOSIM_DEBUG") == "1"
    try:
        app(args=argv, prog_name="kyphosim", standalone_mode=False)
    except KyphosimError as exc:
        if debug:
            raise
        typer.echo(f"kyphosim: error: {exc}", err=True)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if debug:
            raise
        typer.echo(f"kyphosim: error: {exc.strerror or exc}: {exc.filename}", err=True)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except Exception as exc:  # click usage errors and anything unexpected
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click/typer usage errors
            exc.show()
            return 2
        if type(exc).__name__ == "Abort":
            typer.echo("kyphosim: aborted", err=True)
            return 1
        if debug:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        typer.echo(f"kyphosim: internal error: {type(exc).__name__}: {msg} "
                   f"(set KYPHOSIM_DEBUG=1 for a traceback)", err=True)
        return 1
    return 0


def entry() -> None:  # pragma: no cover
    sys.exit(main())
