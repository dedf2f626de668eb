"""What a search prints through the CLI: prunetune's own lines, and Ray's trial folders numbered as its trials."""

import json
import re
import subprocess

from tests.ray_records import trial_folders
from tests.search.test_resume import PRUNETUNE, _finished

# Each of these was printed by `make demo` before the search turned its source off (issue 15,
# item 9), keyed by where it came from.
NOISE = {
    "Ray's token-authentication banner": "Token authentication is enabled",
    "Tune's experiment box": "Configuration for experiment",
    "the box's trial count (num_samples=-1)": "9223372036854775807",
    "Tune's pointer to its results": "View detailed results here",
    "Tune's TensorBoard hint into Ray's session folder": "tensorboard --logdir",
    "Optuna's ExperimentalWarning for TPE's group": "ExperimentalWarning",
    "Optuna's new-study line": "A new study created in RDB",
    "Optuna's existing-study line (OptunaSearch)": "Using an existing study",
    "Optuna's finished-trial line": "finished with values",
    "any Python warning (torch's included)": "Warning: ",
    # Printed on a busy machine: Tune warns from 0.5 s of driver work per result (cli/searching.py).
    "Tune's slow-result warning": "may be a performance bottleneck",
}


def test_a_cli_search_prints_only_its_own_lines_and_numbers_trial_folders_as_its_trials(search_job, tmp_path):
    config = search_job("quiet", trials=2)
    done = subprocess.run([*PRUNETUNE, "search", str(config)], capture_output=True, text=True, timeout=600)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    assert {source: text for source, text in NOISE.items() if text in printed} == {}, printed
    # Piped: plain lines, the search's status after each trial, no bar and no terminal codes.
    assert "\r" not in printed and "\x1b[" not in printed
    status = re.findall(r"^search: (\d)/2 trials finished, (\d) running \| best: (.*) \| [\d:]+ elapsed", done.stdout,
                        re.M)
    assert [finished for finished, _, _ in status] == ["1", "2"] and status[-1][1] == "0", done.stdout
    assert all(re.fullmatch(r"[\d.]+% MACs at accuracy [\d.]+ \(trial \d step \d\)", best) for _, _, best in status)
    # Ray's folder of the study's trial N is trial_N_<its Ray id>, as the printed lines and `export --trial` count.
    experiment = tmp_path / "runs" / "quiet"
    numbers = {json.loads(ray_id): number for number, _, ray_id in _finished(experiment / "study.db")}
    assert trial_folders(experiment) == {ray_id: f"trial_{n}_{ray_id}" for ray_id, n in numbers.items()}
    assert {int(n) for n in re.findall(r"^trial (\d+) step", done.stdout, re.M)} == set(numbers.values())
