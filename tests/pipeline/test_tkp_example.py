"""`prunetune run examples/digits_tkp.yaml`, made tiny by overrides: a channel step, then the TKP stage."""

from pathlib import Path

import pandas as pd
import torch
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.config import load_config
from prunetune.pruning import load_pruned
from prunetune.pruning.kernel_topk import masks_from_metadata

EXAMPLE = Path(__file__).parents[2] / "examples" / "digits_tkp.yaml"
TINY = ("data.train_size=256", "data.calibration_size=64", "baseline.epochs=2", "recovery.epochs=1",
        "tkp.stage1_epochs=1", "tkp.stage2_epochs=1", "stop.max_accuracy_drop=1.0")


def _cells(line: str, bar: str) -> list[str]:
    """The cells of one line of a Rich table (header lines are split by ┃, body lines by │)."""
    return [cell.strip() for cell in line.split(bar)[1:-1]]


def test_the_tkp_example_is_a_channel_step_then_top_2_kernels():
    config = load_config(EXAMPLE)
    assert (config.model.name, config.data.name, config.pruning.schedule.targets) == ("tiny_resnet", "digits", (0.25,))
    assert (config.tkp.topk, config.tkp.reg_type, config.tkp.nm) == (2, "exponential", None)


def test_prunetune_run_on_the_tkp_example_reports_the_tkp_row_with_its_effective_macs(tmp_path):
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), *TINY, f"storage.root={tmp_path / 'runs'}",
                                      "--dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "TKP top-2 per kernel: stage 1 1 epoch (exponential), stage 2 1 epoch" in result.output
    rows = pd.read_parquet(tmp_path / "run" / "rows.parquet")
    assert list(rows["phase"]) == ["prune", "tkp"]
    tkp = rows.iloc[1]
    assert f"[step 2 TKP] target 0.25 -> sparsity {tkp['sparsity']:.3f}, MACs {tkp['mac_ratio']:.1%} (effective " \
           f"{tkp['effective_mac_ratio']:.1%}, theoretical)" in result.output
    # tiny_resnet: its 3x3 convs keep 2 of 9 weights; the 1x1 shortcuts and the classifier stay dense.
    assert 2 / 9 < tkp["effective_macs"] / tkp["macs"] < 0.3
    assert f"best feasible: step 2, accuracy {tkp['accuracy']:.4f}" in result.output
    assert f"effective MACs {tkp['effective_macs']:,} (theoretical)" in result.output
    # The results table: the TKP row's effective MAC ratio beside its dense one, in its own column.
    header_lines = [_cells(line, "┃") for line in result.output.splitlines() if line.startswith("┃")]
    header = [" ".join(part for part in parts if part) for parts in zip(*header_lines)]  # a wrapped header: joined
    table = [_cells(line, "│") for line in result.output.splitlines() if line.startswith("│")]
    assert "eff. MAC ratio (theoretical)" in header
    tkp_line = next(row for row in table if row[0] == "2 tkp")
    shown = dict(zip(header, tkp_line))
    assert (shown["MAC ratio"], shown["eff. MAC ratio (theoretical)"]) == (
        f"{tkp['mac_ratio']:.1%}", f"{tkp['effective_mac_ratio']:.1%}")
    assert load_pruned(tmp_path / "run" / "best.pt").metadata["tkp"]["effective_macs"] == tkp["effective_macs"]
    # The run's export carries the TKP step's masks, and its zeros are in the weights.
    exported = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "tkp.pt")])
    assert exported.exit_code == 0, exported.output
    saved = load_pruned(tmp_path / "tkp.pt")
    assert saved.metadata["step"] == 2 and saved.metadata["tkp"]["effective_macs"] == tkp["effective_macs"]
    masks = masks_from_metadata(saved.metadata)
    convs = dict(saved.model.named_modules())
    assert masks and all(torch.equal(mask, convs[name].weight != 0) for name, mask in masks.items())
