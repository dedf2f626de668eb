"""The ``prunetune`` command: parse, validate, call one function, print."""

from __future__ import annotations

# Importing the command modules registers their commands on the app.
from prunetune.cli import jobs, searching, results, graph, info  # noqa: F401  (this order is --help's)
from prunetune.cli.app import app


def main() -> None:
    app(prog_name="prunetune")
