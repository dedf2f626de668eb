"""`prunetune report`: the plots a person looks at, as PNG files plus one HTML page.

- accuracy against MACs: every (trial, step) point, the Pareto front highlighted, the
  baseline and the accuracy threshold marked;
- accuracy against channel sparsity, one line per trial, coloured by criterion;
- hyperparameter importance per objective (Optuna's default evaluator over the study's
  finished trials), when the study has enough of them;
- the pruning scope: the search's model drawn with its groups (``scope.py``).
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from prunetune.results.front import pareto_front
from prunetune.results.scope import ScopeSection, draw_scope
from prunetune.results.tables import CRITERION, mac_unit

if TYPE_CHECKING:
    import optuna


@dataclass
class Report:
    directory: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scope: ScopeSection | None = None

    @property
    def page(self) -> Path:
        return self.directory / "index.html"


def _baseline(df: pd.DataFrame) -> tuple[float, float] | None:
    rows = df.dropna(subset=["baseline_accuracy", "baseline_macs"])
    return None if rows.empty else (float(rows["baseline_macs"].iloc[0]), float(rows["baseline_accuracy"].iloc[0]))


def _thresholds(df: pd.DataFrame, axis) -> None:
    for index, value in enumerate(sorted(df["threshold"].dropna().unique())):
        axis.axhline(value, color="tab:red", linestyle="--", linewidth=1,
                     label="accuracy threshold" if index == 0 else None)


def accuracy_vs_macs(df: pd.DataFrame, title: str, path: Path) -> Path:
    baseline = _baseline(df)
    scale, unit = mac_unit(max(df["macs"].max(), baseline[0] if baseline else 0))
    fig = Figure(figsize=(8, 5.5))
    axis = fig.subplots()
    feasible = df[df["feasible"].astype(bool)]
    infeasible = df[~df["feasible"].astype(bool)]
    axis.scatter(feasible["macs"] / scale, feasible["accuracy"], s=18, color="tab:blue", alpha=0.45,
                 label=f"feasible step ({len(feasible)})")
    if not infeasible.empty:
        axis.scatter(infeasible["macs"] / scale, infeasible["accuracy"], s=22, marker="x", color="tab:gray",
                     alpha=0.7, label=f"below threshold ({len(infeasible)})")
    front = pareto_front(df).sort_values("macs")
    if not front.empty:
        axis.plot(front["macs"] / scale, front["accuracy"], color="tab:orange", marker="o", markersize=7,
                  linewidth=2, drawstyle="steps-post", label=f"Pareto front ({len(front)})", zorder=3)
        if len(front) <= 12:
            for _, row in front.iterrows():
                axis.annotate(f"t{int(row['trial'])}/s{int(row['step'])}", (row["macs"] / scale, row["accuracy"]),
                              textcoords="offset points", xytext=(4, 5), fontsize=7, color="tab:orange")
    if baseline:
        axis.scatter([baseline[0] / scale], [baseline[1]], marker="*", s=220, color="black", zorder=4,
                     label=f"baseline ({baseline[1]:.4f}, {baseline[0] / scale:.1f}{unit} MACs)")
    _thresholds(df, axis)
    axis.set_xlabel(f"MACs per image ({unit})")
    axis.set_ylabel("validation accuracy")
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}{unit}"))
    axis.set_title(f"{title}: accuracy against MACs, every trial's every step")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def accuracy_vs_sparsity(df: pd.DataFrame, title: str, path: Path) -> Path:
    fig = Figure(figsize=(8, 5.5))
    axis = fig.subplots()
    criteria = df[CRITERION].fillna("?").astype(str) if CRITERION in df.columns else pd.Series("?", index=df.index)
    colours = {name: colormaps["tab10"](index % 10) for index, name in enumerate(sorted(criteria.unique()))}
    baseline = _baseline(df)
    for _, rows in df.assign(criterion=criteria).groupby("trial", dropna=False):
        rows = rows.sort_values("step")
        colour = colours[rows["criterion"].iloc[0]]
        xs, ys = list(rows["sparsity"]), list(rows["accuracy"])
        if baseline:
            xs, ys = [0.0, *xs], [baseline[1], *ys]
        axis.plot(xs, ys, color=colour, alpha=0.6, linewidth=1.2, marker="o", markersize=3)
        last = rows.iloc[-1]
        if not last["feasible"]:
            axis.scatter([last["sparsity"]], [last["accuracy"]], marker="x", color=colour, s=40)
    for name, colour in colours.items():
        axis.plot([], [], color=colour, label=f"criterion {name}")
    axis.scatter([], [], marker="x", color="gray", label="step below threshold (trial stops)")
    _thresholds(df, axis)
    axis.set_xlabel("channel sparsity of the pruning scope (fraction removed)")
    axis.set_ylabel("validation accuracy after recovery")
    axis.set_title(f"{title}: accuracy along each trial's schedule")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def importance(study: optuna.Study, title: str, path: Path) -> Path | None:
    """One panel per objective; None when the study cannot support an importance estimate."""
    from optuna.importance import get_param_importances  # ~1 s to import (scikit-learn forests)

    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    values = {}
    for index, name in enumerate(names):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values[name] = get_param_importances(study, target=lambda trial, i=index: trial.values[i])
        except (ValueError, RuntimeError):  # fewer than two finished trials, or no parameter varies
            return None
    if not any(values.values()):
        return None
    fig = Figure(figsize=(5 * len(values), 0.45 * max(map(len, values.values())) + 2))
    axes = fig.subplots(1, len(values), squeeze=False)
    for axis, (name, scores) in zip(axes[0], values.items()):
        ordered = sorted(scores.items(), key=lambda item: item[1])
        axis.barh([k for k, _ in ordered], [v for _, v in ordered], color="tab:green")
        axis.set_xlabel("importance (fANOVA, share of variance)")
        axis.set_title(f"objective: {name}")
        axis.set_xlim(0, 1)
        axis.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{title}: which searched settings matter")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    # A Figure not made by pyplot renders through Agg for a .png and is freed with its last
    # reference: no backend to choose (none exists on servers and in Ray workers), none to close.
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def write_report(df: pd.DataFrame, directory: str | Path, title: str, study: optuna.Study | None = None,
                 front_table: pd.DataFrame | None = None, search=None) -> Report:
    """The plots and ``index.html`` under ``directory``; with the ``search`` (a ``SearchHome``), its scope drawing."""
    report = Report(Path(directory))
    if df.empty:
        report.notes.append("no results yet: no trial has reported a step")
    else:
        report.images.append(accuracy_vs_macs(df, title, report.directory / "accuracy_vs_macs.png"))
        report.images.append(accuracy_vs_sparsity(df, title, report.directory / "accuracy_vs_sparsity.png"))
    figure = importance(study, title, report.directory / "importance.png") if study is not None else None
    if figure is not None:
        report.images.append(figure)
    else:
        report.notes.append("hyperparameter importance: needs at least two finished trials whose searched "
                            "settings vary")
    if search is not None:
        report.scope = draw_scope(search.job, search.space, report.directory)
    report.page.write_text(_page(title, df, report, front_table))
    return report


def _page(title: str, df: pd.DataFrame, report: Report, front_table: pd.DataFrame | None) -> str:
    trials = df["trial"].nunique() if not df.empty else 0
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
             f"</head><body><h1>{html.escape(title)}</h1>",
             f"<p>{trials} trials, {len(df)} pruning steps.</p>"]
    if front_table is not None and not front_table.empty:
        parts += ["<h2>Pareto front</h2>", front_table.to_html(index=False, border=0)]
    parts += [f"<h2>{html.escape(image.stem.replace('_', ' '))}</h2><img src='{image.name}' alt='{image.stem}'>"
              for image in report.images]
    if report.scope is not None:
        parts.append(report.scope.html(report.directory))
    parts += [f"<p><em>{html.escape(note)}</em></p>" for note in report.notes]
    return "\n".join(parts + ["</body></html>"])
