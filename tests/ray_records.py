"""Ray's own per-trial record (``result.json``, one line per report), read independently of prunetune."""

import json
from pathlib import Path

import pandas as pd


def ray_results(experiment_dir: Path, ray_trial_id: str) -> pd.DataFrame:
    (path,) = Path(experiment_dir).glob(f"*{ray_trial_id}*/result.json")
    return pd.read_json(path, lines=True, precise_float=True)


def ray_steps(experiment_dir: Path) -> set[tuple[str, int]]:
    """(Ray trial id, step) of every step report in the experiment's ``result.json`` files."""
    steps = set()
    for path in Path(experiment_dir).glob("*/result.json"):
        for line in path.read_text().splitlines():
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line a killed driver left half written
            if "step" in result:
                steps.add((result["trial_id"], int(result["step"])))
    return steps


def trial_folders(experiment_dir: Path) -> dict[str, str]:
    """Ray trial id (as Ray's own result.json records it) -> the name of the trial's folder.

    A trial stopped before its first report (a driver interrupted as it started) has an empty
    result.json: nothing of Ray's own says which trial it was, so it is left out.
    """
    reports = {results.parent.name: results.read_text().splitlines()
               for results in Path(experiment_dir).glob("*/result.json")}
    return {json.loads(lines[0])["trial_id"]: folder for folder, lines in reports.items() if lines}
