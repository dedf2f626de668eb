"""Ray's own per-trial record (``result.json``, one line per report), read independently of prunetune."""

from pathlib import Path

import pandas as pd


def ray_results(experiment_dir: Path, ray_trial_id: str) -> pd.DataFrame:
    (path,) = Path(experiment_dir).glob(f"*{ray_trial_id}*/result.json")
    return pd.read_json(path, lines=True, precise_float=True)
