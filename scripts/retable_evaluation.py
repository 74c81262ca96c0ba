"""Rewrite `python -m app evaluate` folders' tables from their per-image records, nothing rerun.

When the way a figure is summarised changes (hole sharpness: a median with an
order-statistic interval in place of a mean), the folders' per_image.csv hold
every photo's score, so table.md, gaps.md, summary.csv and summary.json's cells
are recomputed from them; the run's settings, command and times are kept. A
metric the records lack (one added after the run) stays absent.

    python scripts/retable_evaluation.py FOLDER [FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.quality.evaluate import summarise
from app.quality.report import format_table, read_records, write_tables


def retable(folder: Path) -> str:
    """Rewrite the folder's tables in place; returns its table."""
    document = json.loads((folder / "summary.json").read_text())
    document.pop("cells")
    records = read_records(folder)
    cells = summarise(records)
    write_tables(records, cells, folder, document)
    return format_table(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    for folder in parser.parse_args().folders:
        print(f"{folder}\n{retable(folder)}")


if __name__ == "__main__":
    main()
