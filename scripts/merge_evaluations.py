"""Merge `python -m app evaluate` folders run one mask family each into one folder of tables and grids.

A long evaluation split by family (`--masks center`, `--masks half`, ...) puts
each finished family on disk early, or spreads the families over machines. The
masks, noise and search starts of a family do not depend on the other families,
so the merged tables hold the figures one call would have printed, up to float
rounding from the batch composition. Cells and paired gaps are recomputed from
the per-image scores; each family's command and search time are kept.

    python scripts/merge_evaluations.py OUT FAMILY_DIR [FAMILY_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from app.quality.evaluate import summarise
from app.quality.report import format_table, read_records, write_tables

PER_FAMILY = ("command", "search_seconds", "mean_search_iterations", "seconds")
PER_RUN = ("cells", "masks", *PER_FAMILY, "per_family")


def merge(out: Path, folders: list[Path]) -> str:
    """Write the merged folder; returns its table."""
    documents = [json.loads((folder / "summary.json").read_text()) for folder in folders]
    shared = {key: value for key, value in documents[0].items() if key not in PER_RUN}
    for folder, document in zip(folders, documents, strict=True):
        differing = [key for key in shared if document.get(key) != shared[key]]
        if differing:
            raise SystemExit(f"{folder} was run with other {', '.join(differing)}: only merge runs of one setting")
    records = [record for folder in folders for record in read_records(folder)]
    kinds = list(dict.fromkeys(str(record["kind"]) for record in records))
    per_family: dict[str, Any] = {}
    for document in documents:
        for kind in document["masks"]:
            per_family[kind] = {key: document[key] for key in PER_FAMILY}
    cells = summarise(records)
    write_tables(records, cells, out, {**shared, "masks": kinds, "per_family": per_family})
    for folder in folders:
        for grid in folder.glob("grid_*.png"):
            shutil.copy(grid, out / grid.name)
    return format_table(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("folders", type=Path, nargs="+")
    args = parser.parse_args()
    print(merge(args.out, args.folders))


if __name__ == "__main__":
    main()
