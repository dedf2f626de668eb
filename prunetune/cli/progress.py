"""Progress of long work as the CLI shows it: live bars on a terminal, plain lines anywhere else.

On a terminal (``Console.is_terminal``) the baseline's epoch shows a bar over its batches with
the time left, and a search a bar over its requested trials with the trials running, the best
step so far and the time left; the lines of finished epochs, steps and trials scroll above
the bar. Piped or logged output gets the same lines and, for a search, its status line after
each trial, and no bar. The training loops and the search know nothing of Rich: they call
the callbacks and the view given here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from prunetune.progress import PrintedView, SearchStatus, clock


def _say(console: Console, text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


class BaselineProgress:
    """The baseline's training: one line per epoch (with the time the rest will take) and, on a
    terminal, a bar over the current epoch's batches with its own time left.

    Use as a context manager; pass ``epoch`` and ``batch`` as ``prepare_baseline``'s
    ``on_epoch`` and ``on_batch``.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(TextColumn("baseline epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("batches"), TimeElapsedColumn(), TextColumn("<"),
                            TimeRemainingColumn(), console=console, transient=True) if console.is_terminal else None
        self.task = None
        self.seconds: list[float] = []

    def __enter__(self) -> BaselineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def batch(self, info: dict[str, int]) -> None:
        if self.bar is None:
            return
        if info["batch"] == 0:  # a new epoch: its own bar and time left
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.bar.start()
            self.task = self.bar.add_task("", total=info["batches"], epoch=info["epoch"], epochs=info["epochs"])
        elif self.task is not None:
            self.bar.update(self.task, completed=info["batch"])

    def epoch(self, row: dict[str, Any]) -> None:
        self.seconds.append(row["seconds"])
        left = row["epochs"] - row["epoch"]
        if not left and self.bar is not None:
            self.bar.stop()  # trained: what follows (a search's own bar) takes the terminal
        rest = f", about {clock(left * sum(self.seconds) / len(self.seconds))} left" if left else ""
        _say(self.console, f"[baseline | epoch {row['epoch']}/{row['epochs']}] train loss {row['train_loss']:.4f} "
                           f"acc {row['train_accuracy']:.4f} | val loss {row['val_loss']:.4f} "
                           f"acc {row['val_accuracy']:.4f} | time {row['seconds']:.1f}s{rest}")


class TimeLeftColumn(ProgressColumn):
    """``about M:SS left``, counting down from the search's last estimate (blank before one)."""

    def render(self, task: Task) -> Text:
        ends = task.fields.get("ends")
        return Text(f"about {clock(max(0.0, ends - time.monotonic()))} left" if ends is not None else "")


class LiveSearchView:
    """A terminal's view of a search: step and trial lines scroll above one live bar over the trials."""

    live = True

    def __init__(self, console: Console, name: str) -> None:
        self.console = console
        self.bar = Progress(SpinnerColumn(), TextColumn(f"search {name}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("trials | {task.fields[detail]}"), TimeElapsedColumn(), TimeLeftColumn(),
                            console=console, transient=True)
        self.task = None

    def start(self) -> None:
        self.bar.start()

    def line(self, text: str) -> None:
        _say(self.bar.console, text)

    def status(self, status: SearchStatus) -> None:
        detail = f"{status.running} running" + (f", {status.failed} failed" if status.failed else "")
        detail += f" | best: {status.best}" if status.best else " | no feasible step yet"
        ends = time.monotonic() + status.remaining if status.remaining is not None else None
        if self.task is None:
            self.task = self.bar.add_task("", total=status.requested, detail=detail, ends=ends)
        self.bar.update(self.task, total=status.requested, completed=status.finished, detail=detail, ends=ends)

    def stop(self) -> None:
        self.bar.stop()


@contextmanager
def search_view(console: Console, name: str) -> Iterator[LiveSearchView | PrintedView]:
    """A live bar on a terminal, printed lines elsewhere (each trial's end adds the status line).

    Stopped on the way out, also by Ctrl-C or an error: the terminal gets its cursor back.
    """
    view = LiveSearchView(console, name) if console.is_terminal else PrintedView()
    try:
        yield view
    finally:
        view.stop()
