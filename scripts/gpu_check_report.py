"""scripts/gpu-check.sh's report: its work folder -> OUT/README.md (markdown tables), the bench's CSVs and plots.

    python scripts/gpu_check_report.py --work WORK --out docs/bench/gpu --mode cuda --gpus 1

Reads what the script's steps left in WORK: env.txt, steps.tsv, logs/*.log, cuda-tests.jsonl (written by
tests/pool/test_cuda.py), bench-http/defaults.{csv,png} and bench-engine/bench.{csv,png}. Writes OUT/README.md
and copies the bench's files flat into OUT as http.csv, http.png, engine.csv, engine.png (plus
cuda-tests.jsonl); a file whose step did not produce it is removed from OUT, so no figure of an earlier run
is left beside this run's report.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

COPIES = {
    "bench-http/defaults.csv": "http.csv",
    "bench-http/defaults.png": "http.png",
    "bench-engine/bench.csv": "engine.csv",
    "bench-engine/bench.png": "engine.png",
    "cuda-tests.jsonl": "cuda-tests.jsonl",
}


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], right: int = 1, left: Sequence[int] = ()) -> str:
    """A markdown table; columns from `right` on are right-aligned (numbers), except those in `left`."""
    align = ["---" if i < right or i in left else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def num(value: str | float, digits: int = 2) -> str:
    number = float(value)
    return "n/a" if math.isnan(number) else f"{number:.{digits}f}"


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def steps_section(work: Path) -> str:
    rows = []
    path = work / "steps.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, status, seconds, command = line.split("\t", 3)
        rows.append((f"`{name}`", status, seconds, f"`{command.strip()}`"))
    total = sum(int(row[2]) for row in rows)
    table = md_table(("step", "result", "seconds", "command"), rows, right=2, left=(3,))
    return f"## Steps ({total} s in all)\n\n" + table


def tests_section(work: Path) -> str:
    out = ["## CUDA tests (`tests/pool/test_cuda.py`)"]
    log = work / "logs" / "cuda-tests.log"
    if log.exists():
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        summary = [line for line in lines if re.search(r"\b(passed|failed|skipped|error)\b", line) and " in " in line]
        if summary:
            out.append(f"pytest: `{summary[-1].strip('= ')}`")
        failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
        if failed:
            out.append("\n".join(f"- `{line}`" for line in failed))
    records = []
    path = work / "cuda-tests.jsonl"
    if path.exists():
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pool = [r for r in records if r["test"] == "pool"]
    if pool:
        out.append(
            "The same held-out faces (centre, stroke and block holes) through `IterationPool` on the GPU, every "
            "start submitted at once so they share steps, against the same jobs on the CPU in fp32. Hole PSNR "
            "is against the true face; |diff| is the mean absolute difference from the CPU's answer in [-1, 1] "
            "units (1 level = 0.0078)."
        )
        out.append(
            md_table(
                (
                    "precision",
                    "start",
                    "faces",
                    "hole PSNR GPU dB",
                    "hole PSNR CPU fp32 dB",
                    "mean |diff|",
                    "iterations",
                    "slowest answer s",
                ),  # fmt: skip
                (
                    (
                        r["precision"],
                        r["start"],
                        r["cases"],
                        r["hole_psnr_cuda_db"],
                        r["hole_psnr_cpu_fp32_db"],
                        r["mean_abs_diff_vs_cpu_fp32"],
                        r["iterations"],
                        r["seconds_max"],
                    )  # fmt: skip
                    for r in pool
                ),
                right=2,
            )
        )
    for r in records:
        if r["test"] == "alone vs among others":
            out.append(
                f"One random-start search alone and among the other {len(pool) and pool[0]['cases'] * 4 - 1} jobs "
                f"({r['precision']}): largest difference in its hole {r['max_level_diff_in_hole']:.0f} levels; "
                f"hole PSNR {r['hole_psnr_alone_db']} dB alone, {r['hole_psnr_among_db']} dB among others "
                "(batch invariance is not promised on CUDA)."
            )
        if r["test"] == "reload over HTTP":
            timings = ", ".join(f"{key}: {value * 1000:.0f} ms" for key, value in r["x_total_seconds"].items())
            out.append(
                f"Reload through HTTP ({r['precision']}): `faces:2` and `faces-glcic:1` loaded onto the GPU by "
                f"`POST /v1/models/reload` while `faces:1` served; one answer each after it (X-Total-Seconds, "
                f"first request of each, so warm-up included): {timings}."
            )
    return "\n\n".join(out)


def http_section(work: Path) -> str:
    rows = read_csv(work / "bench-http" / "defaults.csv")
    if not rows:
        return "## Serving through HTTP\n\nNo figures: see the `bench-http` step in gpu-check.log."
    out = [
        "## Serving through HTTP, 64x64 faces (`python -m app bench --defaults`)",
        "One real server per side (uvicorn on a loopback port, the service's settings, one model version, the "
        "model's default answer). `bench-faces:2` is the shipped `faces:2` and `bench-faces-glcic:1` the shipped "
        "`faces-glcic:1`, linked in under names outside the face models so that each 64x64 face crop is "
        "completed whole (one job per request): the search starts from its encoder's guess with a budget set "
        "by the hole, the one-pass model makes one forward pass. Closed-loop clients send seeded damaged faces "
        "(centre, stroke and block holes) as PNG with no budget. The clients run in the server's own process "
        "(asyncio, httpx), so their CPU time is counted in every figure.",
    ]
    sides = list(dict.fromkeys((r["mode"], r["precision"]) for r in rows))
    clients = sorted({int(r["clients"]) for r in rows})
    by = {(r["mode"], r["precision"], int(r["clients"])): r for r in rows}
    low, high = clients[0], clients[1:]
    header = ["model (start)", "precision", f"p50 s at {low}", f"p95 s at {low}", f"compl/s at {low}"]
    header += [f"compl/s at {n}" for n in high] + [f"p50 s at {n}" for n in high]
    summary = []
    for mode, precision in sides:
        cells = [by.get((mode, precision, n)) for n in clients]
        first = cells[0]
        row: list[object] = [mode, precision]
        if first:
            row += [num(first["p50_s"], 3), num(first["p95_s"], 3), num(first["completions_per_s"], 1)]
        else:
            row += [""] * 3
        row += [num(c["completions_per_s"], 1) if c else "" for c in cells[1:]]
        row += [num(c["p50_s"], 3) if c else "" for c in cells[1:]]
        summary.append(row)
    out.append(md_table(header, summary, right=2))
    out.append("Every cell:")
    out.append(
        md_table(
            ("model (start)", "precision", "clients", "done", "compl/s", "p50 s", "p95 s", "p99 s", "slots/step"),
            (
                (
                    r["mode"],
                    r["precision"],
                    r["clients"],
                    r["completed"],
                    num(r["completions_per_s"]),
                    num(r["p50_s"], 3),
                    num(r["p95_s"], 3),
                    num(r["p99_s"], 3),
                    num(r["slots_per_step"], 1),
                )  # fmt: skip
                for r in rows
            ),
            right=2,
        )
    )
    out.append("![throughput, batch occupancy and p95 latency against clients](http.png)")
    return "\n\n".join(out)


def engine_section(work: Path) -> str:
    rows = read_csv(work / "bench-engine" / "bench.csv")
    if not rows:
        return "## The search's engine\n\nNo figures: see the `bench-engine` step in gpu-check.log."
    budgets = "100,600"
    for line in (work / "steps.tsv").read_text().splitlines() if (work / "steps.tsv").exists() else []:
        found = re.search(r"--iterations (\S+)", line)
        if line.startswith("bench-engine\t") and found:
            budgets = found.group(1).replace("\\", "")
    low, _, high = budgets.partition(",")
    out = [
        "## The search's iteration-level engine (`python -m app bench --modes iteration`)",
        f"The shipped `faces:2`, requests straight into `IterationPool` (no HTTP), budgets drawn from {low}-{high} "
        "iterations, random start, 1 restart; image-iterations/s from the server's step counters. %peak is "
        "over the best 1024^3 matmul the run saw in that precision.",
        md_table(
            ("precision", "clients", "done", "img-it/s", "compl/s", "p50 s", "p95 s", "slots/step", "GFLOP/s", "%peak"),
            (
                (
                    r["precision"],
                    r["clients"],
                    r["completed"],
                    num(r["image_iterations_per_s"], 0),
                    num(r["completions_per_s"]),
                    num(r["p50_s"], 3),
                    num(r["p95_s"], 3),
                    num(r["slots_per_step"], 1),
                    num(r["gflops"], 0),
                    f"{float(r['peak_share']):.1%}",
                )  # fmt: skip
                for r in rows
            ),
        ),
        "![image-iterations/s, batch occupancy and p95 latency against clients](engine.png)",
    ]
    return "\n\n".join(out)


def training_section(work: Path, mode: str, gpus: int) -> str:
    out = ["## Training"]
    rows = []
    path = work / "steps.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, status, seconds, command = line.split("\t", 3)
        if name.startswith(("train-", "ddp-")) and name != "train-bench":
            precision = re.search(r"--precision (\S+)", command)
            steps = re.findall(r"--(?:phase\d-)?steps (\d+)", command)
            rows.append((f"`{name}`", precision.group(1) if precision else "", "+".join(steps), status, seconds))
    if rows:
        ranks = f"torchrun on {gpus} GPU(s)" if mode == "cuda" else "torchrun with 2 gloo ranks on the CPU"
        out.append(
            "Each kind trained for a few steps with AMP (`fp16`: autocast with a GradScaler; `auto`: bf16 where "
            f"the GPU has it), the encoder on the freshly trained generator, and the `ddp-` runs through {ranks} "
            "(DistributedDataParallel wraps the networks only from 2 ranks up). Seconds are wall time of the whole "
            "command (start-up, data loading, the steps, the checkpoint and its sample grid)."
        )
        out.append(md_table(("command", "precision", "steps", "result", "seconds"), rows, right=2, left=(3,)))
    log = work / "logs" / "train-bench.log"
    if log.exists():
        text = log.read_text().splitlines()
        head = [line for line in text if line.startswith("device=")]
        table = [re.split(r"\s*\|\s*", line.strip()) for line in text if re.match(r"\s*(fp32|bf16|fp16) \|", line)]
        if table:
            device = head[0] if head else ""
            out.append(f"`python -m training bench` (one DCGAN update of G and D per step): `{device}`")
            out.append(md_table(("precision", "s/step", "img/s"), table))
    return "\n\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scripts/gpu-check.sh's work folder")
    parser.add_argument("--out", type=Path, required=True, help="where README.md and the figures go")
    parser.add_argument("--mode", choices=("cuda", "cpu"), required=True)
    parser.add_argument("--gpus", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for source, name in COPIES.items():
        target = args.out / name
        if (args.work / source).exists():
            shutil.copyfile(args.work / source, target)
        elif target.exists():
            target.unlink()
    env = (args.work / "env.txt").read_text().strip() if (args.work / "env.txt").exists() else "(no env.txt)"
    title = "GPU check" if args.mode == "cuda" else "GPU check, CPU mode (tiny sizes: the script checked, no figures)"
    parts = [
        f"# {title}",
        "Written by `scripts/gpu-check.sh` (`scripts/gpu_check_report.py`); the whole output is in "
        "[gpu-check.log](gpu-check.log).",
        "```\n" + env + "\n```",
        tests_section(args.work),
        http_section(args.work),
        engine_section(args.work),
        training_section(args.work, args.mode, args.gpus),
        steps_section(args.work),
    ]
    (args.out / "README.md").write_text("\n\n".join(parts) + "\n")
    print(f"wrote {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
