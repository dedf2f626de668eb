"""What the CLI prints, as a user piping it sees it: prunetune's own lines only, numbered as its trials.

One tiny search runs through the CLI in a subprocess (a fresh process, so Ray starts its own
local cluster and prints what it prints then), with TPE (whose ``group`` argument Optuna calls
experimental) and cost rungs; then every command a user runs on a search reads it back, each
in its own process.
"""

import json
import re
import subprocess
import textwrap

import pytest

from prunetune.results import load
from tests.conftest import SEARCH_JOB
from tests.ray_records import trial_folders
from tests.search.test_resume import PRUNETUNE, _finished

# Each of these was printed by `make demo` or a command on its search before prunetune turned
# its source off (issue 15, item 9), keyed by where it came from.
NOISE = {
    "Ray's token-authentication banner": "Token authentication is enabled",
    "Tune's experiment box": "Configuration for experiment",
    "the box's trial count (num_samples=-1)": "9223372036854775807",
    "Tune's pointer to its results": "View detailed results here",
    "Tune's TensorBoard hint into Ray's session folder": "To visualize your results with TensorBoard",
    "Optuna's ExperimentalWarning for TPE's group": "ExperimentalWarning",
    "Optuna's new-study line": "A new study created",
    "Optuna's existing-study line (OptunaSearch)": "Using an existing study",
    "Optuna's finished-trial line": "finished with values",
    "torch's warning on a .pt2 written under another suffix": "Expect archive file",
    "any Python warning (torch's included)": "Warning: ",
    "any traceback": "Traceback (most recent call last)",
    # Printed on a busy machine: Tune warns from 0.5 s of driver work per result (cli/searching.py).
    "Tune's slow-result warning": "may be a performance bottleneck",
}
TRIALS = 2
STATUS = re.compile(r"^search: (\d+)/(\d+) trials finished, (\d+) running \| (best: .*|no feasible step yet) \| "
                    r"[\d:]+ elapsed(, about [\d:]+ left)?$", re.M)


def noise_in(printed: str) -> dict[str, str]:
    return {source: text for source, text in NOISE.items() if text in printed}


def prunetune(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PRUNETUNE, *arguments], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """(config, storage root, the search's finished process): 2 trials of a 2-step schedule."""
    folder = tmp_path_factory.mktemp("output")
    config = folder / "quiet.yaml"
    config.write_text(textwrap.dedent(SEARCH_JOB.format(name="quiet", trials=TRIALS, lr="0.01", min_accuracy="0.0",
                                                        root=folder / "runs")))
    done = prunetune("search", str(config), "search.sampler=tpe", "search.scheduler=rungs")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return config, folder / "runs", done


def test_a_search_prints_none_of_rays_optunas_or_torchs_own_lines(searched):
    _, _, done = searched
    printed = done.stdout + done.stderr
    assert noise_in(printed) == {}, printed


def test_piped_search_output_is_plain_lines_with_the_status_after_each_trial(searched):
    _, root, done = searched
    # No bar: no carriage returns, no cursor or colour codes, no bar over the trials or the baseline's batches.
    assert "\r" not in done.stdout and "\x1b[" not in done.stdout + done.stderr
    assert not re.search(r"^.*(search quiet|baseline epoch \d+/\d+) .*━", done.stdout, re.M), done.stdout
    status = STATUS.findall(done.stdout)
    assert [(int(finished), int(requested)) for finished, requested, *_ in status] == [(1, TRIALS), (2, TRIALS)]
    assert int(status[-1][2]) == 0, done.stdout  # nothing runs once every trial has finished
    # Each status line's best is the least costly feasible step among the rows reported by then.
    rows = load("quiet", str(root))
    lines = done.stdout.splitlines()
    for line in (line for line in lines if STATUS.match(line)):
        reported = {(int(trial), int(step)) for trial, step in
                    re.findall(r"^trial (\d+) step (\d+):", "\n".join(lines[:lines.index(line)]), re.M)}
        reported_by_then = rows.apply(lambda row: (int(row["trial"]), int(row["step"])) in reported, axis=1)
        seen = rows[reported_by_then & rows["feasible"]]
        best = seen.sort_values(["macs", "accuracy"], ascending=[True, False]).iloc[0]
        assert (f"best: {best['mac_ratio']:.1%} MACs at accuracy {best['accuracy']:.4f} "
                f"(trial {int(best['trial'])} step {int(best['step'])})") in line, (line, seen)


def test_trial_folders_and_printed_trials_carry_the_studys_trial_numbers(searched):
    _, root, done = searched
    experiment = root / "quiet"
    numbers = {json.loads(ray_id): number for number, _, ray_id in _finished(experiment / "study.db")}
    assert sorted(numbers.values()) == list(range(TRIALS))
    # Ray's folder of the study's trial N is trial_N_<its Ray id>, as the printed lines and `export --trial` count.
    assert trial_folders(experiment) == {ray_id: f"trial_{n}_{ray_id}" for ray_id, n in numbers.items()}
    assert {int(n) for n in re.findall(r"^trial (\d+) step", done.stdout, re.M)} == set(numbers.values())
    assert {int(n) for n in re.findall(r"^trial (\d+) (?:finished|stopped at rung)", done.stdout, re.M)} == \
        set(numbers.values())


def test_the_search_points_tensorboard_under_its_home_once(searched):
    _, root, done = searched
    hints = [line for line in done.stdout.splitlines() if "tensorboard --logdir" in line]
    assert len(hints) == 1, hints
    assert f"tensorboard --logdir {(root / 'quiet' / 'tensorboard').resolve()}" in hints[0], hints


COMMANDS = {
    "status": lambda config, root, out: ["status", "quiet", "--storage", str(root)],
    "pareto": lambda config, root, out: ["pareto", "quiet", "--storage", str(root)],
    "pareto json": lambda config, root, out: ["pareto", "quiet", "--storage", str(root), "--format", "json"],
    "report": lambda config, root, out: ["report", "quiet", "--storage", str(root), "-o", str(out / "report")],
    "graph": lambda config, root, out: ["graph", str(config), "--view", "dependency", "-o", str(out / "graph")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_on_the_search_prints_none_of_their_lines(searched, tmp_path, command):
    config, root, _ = searched
    done = prunetune(*COMMANDS[command](config, root, tmp_path))
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    assert noise_in(printed) == {}, printed


def test_export_with_a_pt2_prints_none_of_their_lines(searched, tmp_path):
    _, root, _ = searched
    front = json.loads(prunetune("pareto", "quiet", "--storage", str(root), "--format", "json").stdout)
    done = prunetune("export", "quiet", "--trial", str(front[0]["trial"]), "--step", str(front[0]["step"]),
                     "--storage", str(root), "-o", str(tmp_path / "model.pt"), "--pt2")
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    assert (tmp_path / "model.pt2").is_file() and noise_in(printed) == {}, printed


def table_columns(printed: str, title: str) -> dict[str, list[str]]:
    """The columns of the Rich table printed under ``title`` (piped: box-drawn, one row a line)."""
    lines = printed.splitlines()
    start = next(number for number, line in enumerate(lines) if title in line)
    header = next(line for line in lines[start:] if line.startswith("┃"))
    names = [cell.strip() for cell in header.strip("┃").split("┃")]
    rows = []
    for line in lines[lines.index(header, start) + 1:]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return {name: [row[column] for row in rows] for column, name in enumerate(names)}


@pytest.mark.parametrize("command", ["search", "status"])
def test_front_tables_give_each_column_one_format_and_scale_counts(searched, tmp_path, command):
    config, root, done = searched
    printed = done.stdout if command == "search" else prunetune(*COMMANDS["status"](config, root, tmp_path)).stdout
    columns = table_columns(printed, "Pareto front over every trial's steps")
    assert columns["accuracy"] and all(re.fullmatch(r"[01]\.\d{4}", value) for value in columns["accuracy"]), columns
    assert all(re.fullmatch(r"\d+\.\d%", value) for value in columns["MAC ratio"]), columns
    for counted in ("MACs", "params"):  # one unit per column, from its largest value, two decimals
        units = {re.fullmatch(r"\d+\.\d\d([KMG])", value).group(1) for value in columns[counted]}
        assert len(units) == 1, columns[counted]
