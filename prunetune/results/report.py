"""`prunetune report`: the plots a person looks at, as PNG files plus one HTML page.

- accuracy against MACs: every (trial, step) point, the Pareto front highlighted, the
  baseline and the accuracy threshold marked;
- accuracy against channel sparsity, one line per trial, coloured by criterion;
- which searched settings matter (``results/importance.py``: PED-ANOVA over each trial's
  own per-step front), or on the page the reason it is not shown.
- the pruning scope: the search's model drawn with its groups (``scope.py``).
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from prunetune.objectives import Objective
from prunetune.registry import OBJECTIVES
from prunetune.results.front import pareto_front
from prunetune.results.importance import METHOD, SettingImportance, setting_importance
from prunetune.results.scope import ScopeSection, draw_scope
from prunetune.results.tables import CRITERION, mac_unit

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Section:
    heading: str
    text: str  # what the plot shows, or why there is none
    image: Path | None = None


@dataclass
class Report:
    directory: Path
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # printed by the command; the page says the same in place
    scope: ScopeSection | None = None  # the search's scope drawing

    @property
    def images(self) -> list[Path]:
        return [section.image for section in self.sections if section.image is not None]

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
    labelled = df["trial"].nunique() <= 12  # which line is which trial, while the labels stay legible
    for number, rows in df.assign(criterion=criteria).groupby("trial", dropna=False):
        rows = rows.sort_values("step")
        colour = colours[rows["criterion"].iloc[0]]
        xs, ys = list(rows["sparsity"]), list(rows["accuracy"])
        if baseline:
            xs, ys = [0.0, *xs], [baseline[1], *ys]
        axis.plot(xs, ys, color=colour, alpha=0.6, linewidth=1.2, marker="o", markersize=3)
        last = rows.iloc[-1]
        if labelled and pd.notna(number):
            axis.annotate(f"t{int(number)}", (last["sparsity"], last["accuracy"]), textcoords="offset points",
                          xytext=(4, 3), fontsize=7, color=colour)
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


def importance_plot(found: SettingImportance, title: str) -> Figure:
    """Each varied setting's share of the PED-ANOVA importance, the method and target in the labels."""
    ordered = sorted(found.shares.items(), key=lambda item: item[1])
    fig = Figure(figsize=(9, 0.5 * len(ordered) + 2.6))
    axis = fig.subplots()
    bars = axis.barh([name for name, _ in ordered], [share for _, share in ordered], color="tab:green")
    axis.bar_label(bars, labels=[f"{share:.0%}" for _, share in ordered], padding=3, fontsize=8)
    axis.set_xlim(0, 1.08)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0%}"))
    unvaried = f"\nnot varied, so not shown: {_settings(found.constant)}" if found.constant else ""
    axis.set_xlabel(f"share of the {METHOD} importance (Optuna); the settings shown sum to 100%{unvaried}")
    fig.suptitle(f"{title}: which searched settings matter")
    axis.set_title(textwrap.fill(f"{METHOD}: how differently the best quarter of the {found.trials} trials chose "
                                 f"each setting; trials ranked by the {found.target}", 100), fontsize=8)
    axis.grid(alpha=0.3, axis="x")
    return fig


def _settings(values: dict) -> str:
    return ", ".join(f"{name} = {value}" for name, value in sorted(values.items()))


def _save(fig: Figure, path: Path) -> Path:
    # A Figure not made by pyplot renders through Agg for a .png and is freed with its last
    # reference: no backend to choose (none exists on servers and in Ray workers), none to close.
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


SUBJECTS = {  # each plot's heading and what it shows, on the page
    "accuracy_vs_macs": (
        "Accuracy against MACs",
        ("Every pruning step of every trial is a model you can export. The orange line is the Pareto front over all "
         "of them; its labels tN/sM name trial N, step M, as `prunetune export --trial N --step M` takes them. Grey "
         "crosses are steps below the accuracy threshold (red dashes).")),
    "accuracy_vs_sparsity": (
        "Accuracy along each trial's schedule",
        ("Each line is one trial (tN: trial N) along its pruning schedule, from the baseline at sparsity 0; a cross "
         "marks the step below the threshold that ended the trial.")),
}


def write_report(df: pd.DataFrame, directory: str | Path, title: str, study: optuna.Study | None = None,
                 front_table: pd.DataFrame | None = None, objective: Objective | None = None,
                 search=None) -> Report:
    """The plots and ``index.html``; ``objective`` (the search's, default accuracy_macs) ranks trials for
    importance; with the ``search`` (a ``SearchHome``), its scope drawing."""
    report = Report(Path(directory))
    if df.empty:
        report.notes.append("no results yet: no trial has reported a step")
    else:
        for plot in (accuracy_vs_macs, accuracy_vs_sparsity):
            image = plot(df, title, report.directory / f"{plot.__name__}.png")
            report.sections.append(Section(*SUBJECTS[image.stem], image))
    if study is not None:
        report.sections.append(_importance_section(study, df, objective or OBJECTIVES.get("accuracy_macs"), title,
                                                   report))
    if search is not None:
        report.scope = draw_scope(search.job, search.space, report.directory)
    report.page.write_text(_page(title, df, report, front_table))
    return report


def _importance_section(study: optuna.Study, df: pd.DataFrame, objective: Objective, title: str,
                        report: Report) -> Section:
    found = setting_importance(study, df, objective)
    heading = "Which searched settings matter"
    if not found.shown:
        report.notes.append(f"setting importance not shown: {found.reason}")
        return Section(heading, f"Not shown: {found.reason}. See docs/inspecting-a-search.md.")
    text = (f"{METHOD} (Optuna's default importance evaluator, chosen explicitly): for each setting, how differently "
            f"the best quarter of the {found.trials} finished trials chose it than all of them did, as a share of "
            f"the total. Trials are ranked by the {found.target}: the whole curve a trial adds to the per-step "
            "front, not one step. Settings that took one value in every trial are left out"
            + (f" ({_settings(found.constant)})." if found.constant else "."))
    return Section(heading, text, _save(importance_plot(found, title), report.directory / "importance.png"))


def _page(title: str, df: pd.DataFrame, report: Report, front_table: pd.DataFrame | None) -> str:
    trials = df["trial"].nunique() if not df.empty else 0
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px}"
             "p.about{color:#444;max-width:60em}</style>",
             f"</head><body><h1>{html.escape(title)}</h1>",
             f"<p>{trials} trials, {len(df)} pruning steps.</p>"]
    if front_table is not None and not front_table.empty:
        parts += ["<h2>Pareto front</h2>", front_table.to_html(index=False, border=0)]
    for section in report.sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.image is not None:
            parts.append(f"<img src='{html.escape(section.image.name)}' alt='{html.escape(section.heading)}'>")
        parts.append(f"<p class='about'>{html.escape(section.text)}</p>")
    if report.scope is not None:
        parts.append(report.scope.html(report.directory))
    if df.empty:
        parts.append("<p><em>No results yet: no trial has reported a step.</em></p>")
    return "\n".join(parts + ["</body></html>"])
