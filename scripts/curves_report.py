"""Re-render an `evaluate --curves` folder's tables and plot from its per-photo records.

The records at every checkpoint are exact answers of that budget, so a new
service default (say, another `HOLE_BUDGET`) is scored from them without
searching again: the report's last table picks each photo's record at the
budget the current default gives its hole.

    python scripts/curves_report.py docs/evaluation/curves/faces
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.engine.search import params_for
from app.quality.curves import Start, default_budgets, read_curves, write_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder written by python -m app evaluate --curves")
    parser.add_argument("--resolution", type=int, default=64, help="the model's side (default 64)")
    args = parser.parse_args()
    records, settings = read_curves(args.folder)
    default = params_for(True)
    budgets = default_budgets(records, int(settings["seed"]), args.resolution, default)
    reference = (settings["reference"]["start"], int(settings["reference"]["iterations"]))
    label = Start(default.init, default.restarts, default.prior_weight).label
    print(write_curves(records, args.folder, settings, reference, (label, budgets)))


if __name__ == "__main__":
    main()
