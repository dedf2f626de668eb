"""The ``prunetune`` command's shared parts: the Typer app, the consoles, error handling.

Bad input (config, paths, names) exits 2 with one message and no traceback; a run that
fails exits 1; Ctrl-C exits 130. Commands live in the modules beside this one, grouped by
what they work on (jobs, searches, results).
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from prunetune.errors import PrunetuneError

PACKAGE = Path(__file__).resolve().parent.parent  # the prunetune package

app = typer.Typer(
    name="prunetune",
    help="Find the best way to prune a convolutional network: a Ray Tune + Optuna search over "
    "prune-and-recover pipelines, with a Pareto front of accuracy against MACs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped or logged output gets wide tables; a terminal keeps its own width. Markup is off:
# what is printed holds user text (names, paths, "needs [low, high]"), which Rich would
# read as tags and drop; styles are given as rich.text.Text.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160, markup=False)
err = Console(stderr=True, markup=False)

ConfigArg = Annotated[Path, typer.Argument(help="YAML config of the job (see examples/ and the README).")]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="Overrides of config fields, e.g. baseline.epochs=5 data.name=shapes.")
]


def user_facing(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn prunetune's errors into a message and an exit code instead of a traceback, and its
    warnings into one line each."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
                return command(*args, **kwargs)
        except PrunetuneError as error:
            err.print(Text.assemble(("error:", "bold red"), f" {error}"), highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _show_warning(shown_before: Callable[..., None], message: Warning | str, category: type[Warning],
                  filename: str, *args: Any, **kwargs: Any) -> None:
    # prunetune's own warnings are messages to the user; the line of code that raised them is not.
    if Path(filename).resolve().is_relative_to(PACKAGE):
        err.print(Text.assemble(("warning:", "yellow"), f" {message}"), highlight=False, soft_wrap=True)
    else:
        shown_before(message, category, filename, *args, **kwargs)


# --storage is the config's storage.root; a command that finds a search by name looks in ./runs,
# then in the index of searches (prunetune/search_index.py) when it is not given.
StorageOpt = Annotated[str | None, typer.Option(
    help="storage root the search was started with (its storage.root; default: ./runs, then the index of "
         "searches every search is recorded in)")]

def print_table(table, title: str) -> None:
    shown = Table(title=title)
    for column in table.columns:
        shown.add_column(str(column), justify="left" if column == "criterion" else "right")
    for values in table.itertuples(index=False):
        shown.add_row(*(str(v) for v in values))
    out.print(shown)


