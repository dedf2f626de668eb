"""What every benchmark script does at the end: the Markdown table, its JSON, and the table on stdout."""

from __future__ import annotations

import json
from pathlib import Path


def write_outputs(out: Path, lines: list[str], data) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    print("\n".join(lines))
