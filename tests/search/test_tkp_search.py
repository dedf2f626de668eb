"""A search mixing channel-only and channel + TKP trials: one front by effective MACs, a TKP step exported."""

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pandas as pd
import torch
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.pruning.kernel_topk import masks_from_metadata
from prunetune.pruning.persist import load_pruned
from prunetune.results import load
from prunetune.search import run_search
from prunetune.spaces import load_search

runner = CliRunner()
REPOSITORY = Path(__file__).resolve().parents[2]
FRESH = """
import json, sys, torch
from prunetune.baseline import prepare_baseline
from prunetune.config import JobConfig
from prunetune.training import evaluate
baseline = prepare_baseline(JobConfig.from_dict(json.load(open(sys.argv[1]))))  # reused: the search's val split
model = torch.load(sys.argv[2], weights_only=False)["model"]
program = torch.export.load(sys.argv[3]).module()  # an exported program has no train() / eval(): a plain loop
with torch.no_grad():
    hits = sum(int((program(images).argmax(1) == labels).sum()) for images, labels in baseline.loaders.val)
program_accuracy = hits / sum(len(labels) for _, labels in baseline.loaders.val)
print(json.dumps([evaluate(model, baseline.loaders.val, baseline.runtime).accuracy, program_accuracy]))
"""


def _front_by_hand(rows: pd.DataFrame) -> set[tuple[int, int]]:
    """(trial, step) of the feasible rows no other feasible row beats in accuracy and effective MACs."""
    points = rows[rows["feasible"]]
    front = set()
    for _, row in points.iterrows():
        beaten = ((points["accuracy"] >= row["accuracy"]) & (points["effective_macs"] <= row["effective_macs"])
                  & ((points["accuracy"] > row["accuracy"]) | (points["effective_macs"] < row["effective_macs"])))
        if not beaten.any():
            front.add((int(row["trial"]), int(row["step"])))
    return front


def test_a_search_mixing_channel_only_and_tkp_trials_ranks_them_on_one_front_by_effective_macs(
        ray_session, search_job, tmp_path):
    job, space = load_search(search_job("mix", trials=4), [
        "pruning.criterion=l1", "pruning.schedule.targets=[0.2]", "tkp.stage1_epochs=1", "tkp.stage2_epochs=1",
        "tkp.stage2_lr=0.001", "tkp.beta=10", "search.space={tkp.topk: {choice: [null, 2]}}"])
    run_search(job, space, verbose=0)
    rows = load("mix", job.storage.root)
    kinds = set(rows.sort_values("step").groupby("trial")["phase"].apply(tuple))
    assert kinds == {("prune",), ("prune", "tkp")}  # channel-only trials and channel + TKP trials
    channel, tkp = rows[rows["phase"] == "prune"], rows[rows["phase"] == "tkp"]
    assert (channel["effective_macs"] == channel["macs"]).all()
    assert (tkp["effective_macs"] < 0.35 * tkp["macs"]).all()  # tiny_cnn's 3x3 convs keep 2 of 9
    assert (tkp["best_effective_macs"] == tkp["effective_macs"]).all()  # each TKP row is its trial's best

    shown = runner.invoke(app, ["pareto", "mix", "--storage", job.storage.root, "--format", "csv"])
    assert shown.exit_code == 0, shown.output
    table = pd.read_csv(StringIO(shown.output))
    assert {(int(t), int(s)) for t, s in zip(table["trial"], table["step"])} == _front_by_hand(rows)
    cheapest = rows[rows["feasible"]].sort_values(["effective_macs", "accuracy"], ascending=[True, False]).iloc[0]
    assert cheapest["phase"] == "tkp" and (int(cheapest["trial"]), int(cheapest["step"])) in _front_by_hand(rows)
    # The TKP points with both counts, raw for programs ...
    on_front = table.merge(rows[["trial", "step", "effective_macs", "macs"]], on=["trial", "step"],
                           suffixes=("", "_stored"))
    assert (on_front["effective_macs"] == on_front["effective_macs_stored"]).all()
    assert (on_front["macs"] == on_front["macs_stored"]).all()
    assert (table.loc[table["phase"] == "tkp", "effective_macs"] < table.loc[table["phase"] == "tkp", "macs"]).all()
    # ... and for people, labelled theoretical.
    people = runner.invoke(app, ["pareto", "mix", "--storage", job.storage.root])
    assert people.exit_code == 0, people.output
    assert "eff. MACs (theoretical)" in people.output

    row = tkp.iloc[0]
    out = tmp_path / "tkp.pt"
    exported = runner.invoke(app, ["export", "mix", "--trial", str(int(row["trial"])), "--step", str(int(row["step"])),
                                   "-o", str(out), "--storage", job.storage.root, "--pt2"])
    assert exported.exit_code == 0, exported.output
    saved = load_pruned(out)
    assert not any(hasattr(m, "parametrizations") for m in saved.model.modules())
    masks = masks_from_metadata(saved.metadata)
    convs = {n: m for n, m in saved.model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert set(masks) == set(convs) and all(torch.equal(masks[n], convs[n].weight != 0) for n in convs)
    assert saved.metadata["tkp"]["effective_macs"] == saved.metadata["metrics"]["effective_macs"] == row["effective_macs"]
    extra = {"metadata.json": ""}
    torch.export.load(out.with_suffix(".pt2"), extra_files=extra)
    assert json.loads(extra["metadata.json"])["tkp"] == saved.metadata["tkp"]  # the program carries the masks too

    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(space.apply(job, json.loads(row["settings"])).to_dict()))
    done = subprocess.run([sys.executable, "-c", FRESH, str(job_file), str(out), str(out.with_suffix(".pt2"))],
                          capture_output=True, text=True, cwd=REPOSITORY, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [row["accuracy"], row["accuracy"]]
