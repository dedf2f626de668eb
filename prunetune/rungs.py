"""Cost rungs: asynchronous successive halving whose rungs are cost levels, not iterations.

The rule (docs/search.md gives the argument and its limits):

- A trial's curve starts at (cost ratio 1.0, the baseline's accuracy), the dense model
  every trial starts from, and goes through its steps in report order. A step *passes* a
  level when its cost ratio is at or below it for the first time.
- Its accuracy at the level is interpolated linearly between the step before (the
  cheapest point of the curve so far) and this step; a step exactly at the level is its
  own accuracy. A step that passes several levels records each of them, highest first.
- A record is *feasible* when its accuracy is at or above the trial's threshold. Records
  rank feasible before infeasible, then by accuracy; two within ``TIE`` of each other are
  tied, and a tie is never "behind".
- When a record arrives (the moment its step reaches the driver: asynchronous, as ASHA),
  with ``n`` records at the rung counting it and fewer than ``grace`` of them, the trial
  goes on (``grace``). Otherwise it goes on when fewer than ``n / reduction_factor``
  records there are strictly better (``continue``), and is stopped if not (``stop``).
  Earlier decisions are never revisited.
- A step below the threshold ends the trial's cuts in the pipeline itself: its records
  count for the trials after it but never stop it (``ended``), so the fine-tuning of its
  last feasible model (``recovery.final_epochs``) still runs.

``RungBook`` keeps the records and decides; with a journal (``rungs.jsonl`` in the search
home) every record is appended and fsynced before the decision is acted on, and a book
opened on the same journal (a resumed driver, ``prunetune status``) has every record and
decision made before. Nothing here imports Ray or Optuna: the Ray scheduler
(``search/rungs.py``), the results readers and the tests use it as it is.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from prunetune.curves import COST_RATIO, cost_ratio, number
from prunetune.io import append_lines
from prunetune.registry import SCHEDULERS

RUNGS_FILE = "rungs.jsonl"  # the rung records of a search, in its home
TIE = 1e-9  # accuracies closer than this are equal (interpolation's rounding, not a measured difference)
GRACE, CONTINUE, STOP, ENDED = "grace", "continue", "stop", "ended"


@dataclass(frozen=True)
class RungSettings:
    levels: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
    reduction_factor: float = 3.0
    grace: int = 3
    cost: str = "macs"  # the objective's cost column: the levels are its ratios to the dense model's

    def __post_init__(self) -> None:
        levels = tuple(sorted({float(level) for level in self.levels}, reverse=True))
        if not levels or not all(0.0 < level < 1.0 for level in levels):
            raise ValueError(f"rung levels {list(self.levels)}: need at least one, each between 0 and 1")
        if self.reduction_factor <= 1.0 or self.grace < 1 or self.cost not in COST_RATIO:
            raise ValueError(f"rungs: reduction_factor {self.reduction_factor} (> 1), grace {self.grace} (>= 1), "
                             f"cost {self.cost!r} ({', '.join(COST_RATIO)})")
        object.__setattr__(self, "levels", levels)

    @property
    def ratio_name(self) -> str:
        return COST_RATIO[self.cost]


@dataclass(frozen=True)
class RungRecord:
    rung: int  # index into the levels, highest level first
    level: float
    trial_id: str  # Ray's: the key (a trial is recorded once per rung)
    trial: int | None  # the Optuna trial number, for people
    step: int  # the step that passed the level
    accuracy: float  # at the level
    feasible: bool
    recorded: int  # records at the rung, this one included, when it arrived
    better: int  # of those, strictly better than this one
    decision: str  # grace / continue / stop / ended

    def line(self) -> str:
        return json.dumps(asdict(self)) + "\n"


class Rung:
    """The records at one level, kept sorted so a new record's rank costs a binary search."""

    def __init__(self) -> None:
        self.trials: set[str] = set()
        self.accuracies: dict[bool, list[float]] = {True: [], False: []}  # by feasibility, ascending

    def __len__(self) -> int:
        return len(self.trials)

    def better(self, feasible: bool, accuracy: float) -> int:
        """Records strictly better than (``feasible``, ``accuracy``): feasible ones rank above infeasible ones."""
        same = self.accuracies[feasible]
        above = len(same) - bisect.bisect_right(same, accuracy + TIE)
        return above + (0 if feasible else len(self.accuracies[True]))

    def add(self, record: RungRecord) -> None:
        self.trials.add(record.trial_id)
        bisect.insort(self.accuracies[record.feasible], record.accuracy)


def decide(feasible: bool, accuracy: float, crossing_feasible: bool, rung: Rung,
           settings: RungSettings) -> tuple[int, int, str]:
    """(records counting this one, how many are strictly better, the decision) for a record at ``rung``.

    ``crossing_feasible``: whether the step that passed the level met the threshold.
    """
    recorded, better = len(rung) + 1, rung.better(feasible, accuracy)
    if not crossing_feasible:
        return recorded, better, ENDED
    if recorded < settings.grace:
        return recorded, better, GRACE
    return recorded, better, CONTINUE if better < recorded / settings.reduction_factor else STOP


class RungBook:
    """The records of every rung, the decisions on them, and each trial's curve so far."""

    def __init__(self, settings: RungSettings, journal: Path | None = None) -> None:
        self.settings = settings
        self.journal = Path(journal) if journal is not None else None
        self.records: list[RungRecord] = []
        self.rungs = [Rung() for _ in settings.levels]
        self.stops: dict[str, RungRecord] = {}  # trial id -> the record that stopped it
        self.cheapest: dict[str, tuple[float, float]] = {}  # trial id -> (cost ratio, accuracy) of its cheapest point
        if self.journal is not None:
            for record in read_records(self.journal):
                self._keep(record)
            end_torn_line(self.journal)

    # Ray pickles the scheduler that holds the book (tuner.pkl); the records must then come
    # from the journal, which holds every one made since, not from the pickle.
    def __getstate__(self) -> dict:
        return {"settings": self.settings, "journal": self.journal}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["settings"], state["journal"])

    def _keep(self, record: RungRecord) -> None:
        if record.trial_id in self.rungs[record.rung].trials:
            return
        self.records.append(record)
        self.rungs[record.rung].add(record)
        if record.decision == STOP:
            self.stops.setdefault(record.trial_id, record)

    def observe(self, trial_id: str, row: dict, trial: int | None = None) -> list[RungRecord]:
        """Record the levels report row ``row`` passes, decide on each, and return the new records.

        The row's keys read: ``step``, ``accuracy``, ``feasible``, ``threshold``,
        ``baseline_accuracy`` and the cost (``mac_ratio``, or ``latency_ms`` and
        ``baseline_latency_ms``): a pipeline row, or a simulated one.
        """
        settings = self.settings
        cost, accuracy = cost_ratio(row, settings.cost), number(row.get("accuracy"))
        if cost is None or accuracy is None:
            return []
        before = self.cheapest.get(trial_id, (1.0, number(row.get("baseline_accuracy")) or accuracy))
        if cost > before[0]:
            return []  # more costly than a point the curve already has: it passes no new level
        self.cheapest[trial_id] = (cost, accuracy)
        threshold = number(row.get("threshold"))
        new = []
        for rung, level in enumerate(settings.levels):
            # One record per trial and rung: a trial re-run from its start (--errored) counts once.
            if not cost <= level < before[0] or trial_id in self.rungs[rung].trials:
                continue
            at_level = accuracy if cost == level else \
                before[1] + (accuracy - before[1]) * (before[0] - level) / (before[0] - cost)
            feasible = threshold is None or at_level >= threshold
            recorded, better, decision = decide(feasible, at_level, bool(row.get("feasible")), self.rungs[rung],
                                                settings)
            new.append(RungRecord(rung, level, trial_id, trial, int(row["step"]), at_level, feasible, recorded,
                                  better, decision))
            self._keep(new[-1])
        if self.journal is not None and new:
            append_lines(self.journal, [record.line() for record in new])
        return new

    def stopped_by(self, trial_id: str) -> RungRecord | None:
        """The record whose decision stopped the trial (its highest rung that said stop), if any."""
        return self.stops.get(trial_id)


def read_records(journal: Path) -> list[RungRecord]:
    """The records of a rung journal, in the order they were made; a line a kill cut short is skipped."""
    try:
        lines = Path(journal).read_text().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(RungRecord(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return records


def end_torn_line(journal: Path) -> None:
    """End a line a kill cut short, so the next record starts a line of its own."""
    if journal.is_file() and journal.stat().st_size:
        with journal.open("rb") as file:
            file.seek(-1, 2)
            torn = file.read(1) != b"\n"
        if torn:
            append_lines(journal, ["\n"])


@dataclass(frozen=True)
class RungCount:
    """One rung as ``prunetune status`` shows it."""

    level: float
    recorded: int
    stopped: tuple[int | str, ...]  # the trials this rung stopped (their first stop), by number
    best: float | None  # the best accuracy recorded there

    @property
    def best_text(self) -> str:
        return "-" if self.best is None or math.isnan(self.best) else f"{self.best:.4f}"


def count_rungs(settings: RungSettings, records: Sequence[RungRecord]) -> list[RungCount]:
    """Per rung: how many trials were recorded, which it stopped, the best accuracy there."""
    first_stops = {}
    for record in records:
        if record.decision == STOP:
            first_stops.setdefault(record.trial_id, record)
    counts = []
    for rung, level in enumerate(settings.levels):
        here = [record for record in records if record.rung == rung]
        stopped = tuple(record.trial if record.trial is not None else record.trial_id
                        for record in first_stops.values() if record.rung == rung)
        feasible = [record.accuracy for record in here if record.feasible]
        counts.append(RungCount(level, len(here), stopped, max(feasible) if feasible else None))
    return counts


@dataclass(frozen=True)
class RungReport:
    """A search's rungs for ``prunetune status``: its settings and each rung's counts."""

    settings: RungSettings
    counts: list[RungCount]

    @property
    def stopped(self) -> int:
        return sum(len(count.stopped) for count in self.counts)


def settings_of(search, cost: str) -> RungSettings:
    """The rung settings of a job's ``search`` section, for an objective whose cost column is ``cost``."""
    return RungSettings(tuple(search.rungs.levels), search.rungs.reduction_factor, search.rungs.grace, cost)


def rung_report(search, cost: str, home: Path) -> RungReport | None:
    """The rungs of the search in ``home`` as its journal holds them; None when its scheduler has none."""
    if not getattr(SCHEDULERS.get(search.scheduler), "reads_rungs", False):
        return None
    settings = settings_of(search, cost)
    return RungReport(settings, count_rungs(settings, read_records(Path(home) / RUNGS_FILE)))
