"""The table and plot of bench/search_compute.py, from its records; rerun alone on its JSON files.

    # one run per seed (in parallel), then one table over all of them:
    .venv/bin/python bench/search_compute_report.py bench/results/search_compute.md bench/results/search_compute_s*.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from common import write_outputs


UNITS = {"steps": "pipeline steps run (one recovery epoch each)",
         "seconds": "trial seconds (Ray's time_total_s at each trial's last report)"}


def _hv_at(curve: pd.DataFrame, spent: float, unit: str) -> float | None:
    """Hypervolume with at most ``spent`` compute (None if the search did not spend that much)."""
    if curve[unit].iloc[-1] < spent * 0.98:
        return None
    within = curve[curve[unit] <= spent]
    return float(within["hv"].iloc[-1]) if len(within) else 0.0


def _compute_to_reach(curve: pd.DataFrame, target: float, budget: float, unit: str) -> float | None:
    reached = curve[(curve["hv"] >= target - 1e-12) & (curve[unit] <= budget * 1.02)]
    return float(reached[unit].iloc[0]) if len(reached) else None


def _spread(values: list[float | None], digits: int = 4) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    missing = f", {len(values) - len(present)} short" if len(present) < len(values) else ""
    return f"{statistics.median(present):.{digits}f} [{min(present):.{digits}f}, {max(present):.{digits}f}{missing}]"


def _median_reach(reaches: list[float | None]) -> float | None:
    """Median compute to reach, counting a search that never reached it as infinitely late."""
    ordered = sorted(r if r is not None else float("inf") for r in reaches)
    middle = ordered[len(ordered) // 2] if len(ordered) % 2 else (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    return None if middle == float("inf") else middle


def report(out: Path, records: list[dict], summary: dict) -> None:
    curves = {(r["variant"], r["seed"]): pd.DataFrame(r["curve"]) for r in records}
    unit = summary.get("compute", "seconds")
    total = "trial_seconds" if unit == "seconds" else "steps"
    random = [r for r in records if r["variant"] == "random"]
    te = sum(r[total] for r in random) / sum(r["trials"] for r in random)
    budget_te = summary["budget_te"]
    budgets = [budget_te / 4, budget_te / 2, budget_te]
    target = statistics.median(_hv_at(curves[("random", r["seed"])], budget_te * te, unit) or 0.0 for r in random)
    variants = list(dict.fromkeys(r["variant"] for r in records))
    seeds = sorted({r["seed"] for r in records})
    seeds_of = {v: sorted({r["seed"] for r in records if r["variant"] == v}) for v in variants}

    reach_te = {}
    for variant in variants:
        reaches = [_compute_to_reach(curves[(variant, s)], target, budget_te * te, unit) for s in seeds_of[variant]]
        median = _median_reach(reaches)
        reach_te[variant] = (None if median is None else median / te, sum(r is not None for r in reaches), len(reaches))
    random_reach = reach_te.get("random", (None,))[0]
    rows = []
    for variant in variants:
        cells = [_spread([_hv_at(curves[(variant, s)], b * te, unit) for s in seeds_of[variant]]) for b in budgets]
        reach, reached, tried = reach_te[variant]
        factor = f" ({random_reach / reach:.2f}x random's)" if reach and random_reach and variant != "random" else ""
        reach_cell = f"{reach:.1f} TE{factor}" if reach else "not reached"
        per_trial = sum(r[total] for r in records if r["variant"] == variant) / sum(
            r["trials"] for r in records if r["variant"] == variant)
        rows.append(f"| {variant} | " + " | ".join(cells) + f" | {reach_cell}; {reached} of {tried} seeds | "
                    f"{per_trial / te:.2f} |")
    best = min((v for v in reach_te if v != "random" and reach_te[v][0] is not None), key=lambda v: reach_te[v][0],
               default=None)

    lines = [f"# Search at equal compute ({time.strftime('%Y-%m-%d')})", "",
             f"`python bench/search_compute.py --trials {budget_te} --seeds {summary['seeds']} --compute {unit} --config "
             f"{summary['config']}`; {summary['machine']}, 2 concurrent trials of 1 thread, "
             f"{summary['minutes']:.1f} min" + (" (the longest of the runs merged here)." if summary.get("merged") else
                                                 " in all."), "",
             f"Baseline accuracy {summary['baseline_accuracy']:.4f}, threshold {summary['threshold']:.4f}; "
             f"hypervolume in (accuracy, MAC ratio) over every feasible step, reference "
             f"({summary['threshold']:.4f}, 1.0). Compute = {UNITS[unit]}, summed over the search's trials in "
             f"proposal order; 1 TE (trial-equivalent) = a random-search trial's mean, {te:.2f} {unit}. "
             f"Median over {len(seeds)} seeds [min, max]; 'short' = a search that spent less than that budget.", "",
             "| variant | " + " | ".join(f"HV at {b:g} TE" for b in budgets)
             + f" | compute to reach random's HV at {budget_te} TE ({target:.4f}), median | TE per trial |",
             "|" + " --- |" * (len(budgets) + 3), *rows]
    if summary.get("seed001_hv") is not None:
        lines.append(f"| seed-001 schedule (one run, {summary.get('seed001_steps', '?')} steps) | - | - | "
                     f"{summary['seed001_hv']:.4f} | - | - |")
    lines += ["", (f"Fastest to random's hypervolume at {budget_te} TE: **{best}**, median {reach_te[best][0]:.1f} TE "
                   f"against random's own {random_reach:.1f} TE ({random_reach / reach_te[best][0]:.2f}x less compute)"
                   f"; factor = random's median compute to reach it / the variant's." if best and random_reach else
                   "No variant reached random's hypervolume within the budget."), "",
              "Per search:", "", "| variant | seed | trials | steps | trial seconds | wall seconds | final HV |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        wall = f"{r['wall_seconds']:.0f}" if r["wall_seconds"] is not None else "(earlier run)"
        lines.append(f"| {r['variant']} | {r['seed']} | {r['trials']} | {r['steps']} | {r['trial_seconds']:.0f} | "
                     f"{wall} | {r['final_hv']:.4f} |")
    plot(out.with_suffix(".png"), curves, seeds_of, te, budget_te, target, summary.get("seed001_hv"), unit)
    lines += ["", f"![hypervolume against compute]({out.with_suffix('.png').name})"]
    write_outputs(out, lines, {"records": records, "summary": {**summary, "te_seconds": te, "target_hv": target,
                                                                "reach_te": {v: r[0] for v, r in reach_te.items()}, "fastest": best}})


def plot(path: Path, curves: dict, seeds_of: dict[str, list[int]], te: float, budget_te: float,
         target: float, seed001_hv: float | None, unit: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0.25, budget_te, 80)
    figure, axis = plt.subplots(figsize=(9, 5.5))
    for index, (variant, seeds) in enumerate(seeds_of.items()):
        values = np.array([[np.nan if (hv := _hv_at(curves[(variant, s)], x * te, unit)) is None else hv
                            for x in grid] for s in seeds])
        style = "-" if "rungs" not in variant else "--"
        colour = f"C{index}"
        axis.plot(grid, np.nanmedian(values, axis=0), style, color=colour, label=variant, linewidth=2)
        axis.fill_between(grid, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=colour, alpha=0.08)
    axis.axhline(target, color="black", linewidth=0.8, linestyle=":", label=f"random at {budget_te:g} TE")
    if seed001_hv is not None:
        axis.axhline(seed001_hv, color="grey", linewidth=1.2, linestyle="-.", label="seed-001 schedule")
    axis.set_xlabel(f"compute in trial-equivalents ({unit} / a random-search trial's mean)")
    axis.set_ylabel("hypervolume of the step front")
    axis.set_title("Step-front hypervolume against compute (median over seeds, band = min-max)")
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def merged(paths: list[Path]) -> tuple[list[dict], dict]:
    """The records of several runs (one per seed) on one root, and one summary for all of them."""
    saved = [json.loads(path.read_text()) for path in paths]
    # a search two runs share (each run's random, which sets the trial-equivalent) counts once
    records = list({(r["variant"], r["seed"]): r for run in saved for r in run["records"]}.values())
    order = list(dict.fromkeys(r["variant"] for r in records))  # as the first file lists them
    records.sort(key=lambda r: (order.index(r["variant"]), r["seed"]))
    summary = {**saved[0]["summary"], "seeds": ",".join(str(s) for s in sorted({r["seed"] for r in records})),
               "minutes": max(run["summary"]["minutes"] for run in saved), "merged": len(saved) > 1}
    return records, summary


if __name__ == "__main__":
    report(Path(sys.argv[1]), *merged([Path(arg) for arg in sys.argv[2:]]))
