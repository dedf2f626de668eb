"""The CLI's progress: a live bar on a terminal (Rich forced to one, or a pty), plain lines when piped."""

import io
import os
import pty
import re
import subprocess
import sys

from rich.console import Console
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.cli.progress import BaselineProgress, LiveSearchView, search_view
from prunetune.progress import PrintedView, SearchStatus

BAR = "━"  # the bar Rich draws
ETA = re.compile(r"< \d:\d\d:\d\d")  # TimeRemainingColumn


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=150, markup=False)


def without_codes(text: str) -> str:
    """What the terminal shows, less its colour and cursor codes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def epoch_row(epoch, epochs=3, seconds=2.0):
    return {"epoch": epoch, "epochs": epochs, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.1,
            "val_accuracy": 0.4, "seconds": seconds}


def test_a_terminal_gets_a_bar_per_baseline_epoch_with_its_eta_and_the_epoch_lines():
    console = terminal()
    with BaselineProgress(console) as progress:
        for epoch in (1, 2):
            for batch in range(5):
                progress.batch({"epoch": epoch, "epochs": 3, "batch": batch, "batches": 4})
            progress.bar.refresh()
            progress.epoch(epoch_row(epoch))
    shown = without_codes(console.file.getvalue())
    assert BAR in shown and "baseline epoch 2/3" in shown and "4/4 batches" in shown and ETA.search(shown)
    assert "[baseline | epoch 1/3] train loss 1.0000" in shown and "time 2.0s, about 0:04 left" in shown


def test_piped_output_gets_the_epoch_lines_only():
    console = Console(file=io.StringIO(), width=150, markup=False)
    with BaselineProgress(console) as progress:
        for epoch in (1, 2, 3):
            for batch in range(5):
                progress.batch({"epoch": epoch, "epochs": 3, "batch": batch, "batches": 4})
            progress.epoch(epoch_row(epoch, seconds=epoch))
    assert console.file.getvalue().splitlines() == [
        "[baseline | epoch 1/3] train loss 1.0000 acc 0.5000 | val loss 1.1000 acc 0.4000 | time 1.0s, about 0:02 left",
        "[baseline | epoch 2/3] train loss 1.0000 acc 0.5000 | val loss 1.1000 acc 0.4000 | time 2.0s, about 0:02 left",
        "[baseline | epoch 3/3] train loss 1.0000 acc 0.5000 | val loss 1.1000 acc 0.4000 | time 3.0s"]


def test_a_terminal_gets_a_live_bar_over_the_trials_with_running_best_and_time_left():
    console = terminal()
    with search_view(console, "demo") as view:
        assert isinstance(view, LiveSearchView) and view.live
        view.start()
        view.status(SearchStatus(4, 0, 2, 0, None, 1, None))
        view.line("trial 0 step 1: sparsity 0.400 ...")
        view.status(SearchStatus(4, 2, 2, 1, "58.2% MACs at accuracy 0.9806 (trial 1 step 3)", 70, 70))
        view.bar.refresh()
    shown = without_codes(console.file.getvalue())
    assert "trial 0 step 1: sparsity 0.400 ..." in shown
    assert re.search(rf"search demo {BAR}+.* 2/4 trials \| 2 running, 1 failed \| best: 58\.2% MACs at accuracy "
                     r"0\.9806 \(trial 1 step 3\) .*about 1:(09|10) left", shown), shown


def test_piped_output_gets_the_printed_view():
    with search_view(Console(file=io.StringIO()), "demo") as view:
        assert isinstance(view, PrintedView)


def test_the_baseline_command_piped_prints_epoch_lines_without_a_bar(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(f"storage: {{root: {tmp_path}}}\nmodel: {{name: tiny_cnn}}\n"
                   "data: {image_size: 16, train_size: 128, calibration_size: 32, batch_size: 32}\nbaseline: {epochs: 2}\n")
    result = CliRunner().invoke(app, ["baseline", str(job)])
    assert result.exit_code == 0, result.output
    assert re.search(r"^\[baseline \| epoch 1/2\] .* \| time [\d.]+s, about \d:\d\d left$", result.output, re.M)
    assert BAR not in result.output.split("baseline (trained")[0] and "\r" not in result.output


def test_the_baseline_command_on_a_terminal_shows_the_bar(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(f"storage: {{root: {tmp_path}}}\nmodel: {{name: tiny_cnn}}\n"
                   "data: {image_size: 16, train_size: 512, calibration_size: 32, batch_size: 16}\nbaseline: {epochs: 2}\n"
                   "runtime: {threads: 1}\n")
    shown = run_in_a_terminal([sys.executable, "-m", "prunetune.cli", "baseline", str(job)])
    assert re.search(rf"baseline epoch 1/2 .*{BAR}.* \d+/32 batches", shown) and ETA.search(shown), shown[-2000:]
    assert re.search(r"\[baseline \| epoch 2/2\] train loss", shown), shown[-2000:]


def run_in_a_terminal(command: list[str]) -> str:
    """The command's output as a terminal (a pty) receives it."""
    parent, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "150"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(command, stdin=child, stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    received = []
    while True:
        try:
            data = os.read(parent, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        received.append(data)
    os.close(parent)
    assert process.wait(timeout=300) == 0, b"".join(received).decode(errors="replace")[-3000:]
    return without_codes(b"".join(received).decode(errors="replace"))
