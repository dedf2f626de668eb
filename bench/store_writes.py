"""The driver's cost of recording one result in the results store, as the store grows.

    .venv/bin/python bench/store_writes.py [--sizes 300,3000,10000] [--out bench/results/store_writes.md]

The search driver adds every reported step to ``results.parquet`` (results/store.py) in the
same process that handles all trials' results, so the time a ``put`` takes is time no
other result is handled. Rows are real store rows (``make_row`` over the default config:
~170 columns). For each store size, 200 more rows arrive back to back: ``write_share`` 1.0
rewrites the file on every row (the store before the journal), 0.1 rewrites it when its
rewrites have taken at most a tenth of the time and journals the rows in between.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from common import write_outputs

from prunetune.config import load_config
from prunetune.results.store import Store, make_row
from prunetune.step_row import ROW_COLUMNS

ARRIVING = 200


def rows(count: int, start: int = 0) -> list[dict]:
    config = load_config(None, [])
    result = {column: 0.5 for column in ROW_COLUMNS} | {"feasible": True, "is_best": False}
    return [make_row("bench", index // 8, f"trial{index // 8:05d}", result | {"step": index % 8},
                     {"pruning.criterion": "l1", "recovery.lr": 1e-3}, config, f"/ckpt/{index}")
            for index in range(start, start + count)]


def measure(size: int, write_share: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.parquet"
        existing = Store(path)
        existing.merge(rows(size))
        existing.write()
        store = Store(path, write_share)  # the driver's store as it stands when the next rows arrive
        arriving = rows(ARRIVING, size)
        seconds = []
        for row in arriving:
            started = time.perf_counter()
            store.put(row)
            seconds.append(time.perf_counter() - started)
        flush = time.perf_counter()
        store.flush()
        return {"size": size, "write_share": write_share, "mean_ms": 1000 * statistics.mean(seconds),
                "median_ms": 1000 * statistics.median(seconds), "max_ms": 1000 * max(seconds),
                "flush_ms": 1000 * (time.perf_counter() - flush)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,3000,10000")
    parser.add_argument("--out", type=Path, default=Path("bench/results/store_writes.md"))
    args = parser.parse_args()
    measure(10, 1.0)  # warm-up: pyarrow's first conversion is slow
    records = [measure(int(size), share) for size in args.sizes.split(",") for share in (1.0, 0.1)]
    lines = [f"# Recording a result in the store ({time.strftime('%Y-%m-%d')})", "",
             f"`python bench/store_writes.py --sizes {args.sizes}`; {platform.machine()} CPU. "
             f"{ARRIVING} rows arrive back to back at each store size.", "",
             "| rows in the store | write_share | mean ms per result | median ms | max ms | final flush ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['size']:,} | {r['write_share']} | {r['mean_ms']:.1f} | {r['median_ms']:.2f} | "
              f"{r['max_ms']:.0f} | {r['flush_ms']:.0f} |" for r in records]
    write_outputs(args.out, lines, records)


if __name__ == "__main__":
    main()
