# ruff: noqa: T201 (a command-line script: printing is its output)
"""Client side of scripts/compose-smoke.sh: real completions, a burst, Prometheus checks, the dashboard PNG.

Talks only to the loopback ports the stack publishes. Standard library plus numpy, Pillow and
matplotlib (all in the project's own dependencies), so it runs with the repository's Python.

    python scripts/smoke_client.py complete --url http://127.0.0.1:18000 --faces ../shared/data/...npz
    python scripts/smoke_client.py burst    --url ... --faces ... --requests 16 --concurrency 8
    python scripts/smoke_client.py scraped  --prom http://127.0.0.1:19090
    python scripts/smoke_client.py panels   --prom ... --dashboard deploy/grafana/dashboards/imgcomp.json \
        --start UNIX --end UNIX --png docs/dashboard.png
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

# Grafana expands $__rate_interval to at least four scrape intervals (5 s here); a fixed window keeps the
# panel queries runnable against Prometheus directly and smooth enough over a burst of a minute or two.
RATE_WINDOW = "30s"


def _face(faces: Path, index: int) -> np.ndarray:
    with np.load(faces) as archive:
        images = archive["images"]
    return images[index % len(images)]


def _centre_hole(shape: tuple[int, ...], fraction: float = 0.4) -> np.ndarray:
    """True in a centred square covering `fraction` of each side: the hole to fill."""
    height, width = shape[:2]
    hole = np.zeros((height, width), dtype=bool)
    h, w = int(height * fraction), int(width * fraction)
    top, left = (height - h) // 2, (width - w) // 2
    hole[top : top + h, left : left + w] = True
    return hole


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _multipart(files: dict[str, bytes], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _post_complete(
    url: str, image: np.ndarray, hole: np.ndarray, fields: dict[str, str], timeout: float
) -> tuple[int, bytes, float, str | None]:
    """(status, body, seconds, Retry-After) of one POST /complete."""
    mask = np.where(hole, 255, 0).astype(np.uint8)  # white = fill, the API's convention
    body, content_type = _multipart({"image": _png(image), "mask": _png(mask)}, fields)
    request = urllib.request.Request(f"{url}/complete", data=body, headers={"Content-Type": content_type})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), time.monotonic() - started, None
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.monotonic() - started, error.headers.get("Retry-After")


def cmd_complete(args: argparse.Namespace) -> int:
    image = _face(args.faces, args.index)
    hole = _centre_hole(image.shape)
    damaged = image.copy()
    damaged[hole] = 0  # the model must never see the pixels it is asked to restore
    fields = {"iterations": str(args.iterations), "restarts": str(args.restarts), "seed": "0"}
    status, body, seconds, _ = _post_complete(args.url, damaged, hole, fields, args.timeout)
    print(f"completion: HTTP {status} in {seconds:.1f} s, {len(body)} bytes")
    if status != 200:
        print(f"completion failed: {body[:500]!r}", file=sys.stderr)
        return 1
    restored = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    if restored.shape != image.shape:
        print(f"completion failed: answer is {restored.shape}, sent {image.shape}", file=sys.stderr)
        return 1
    changed = int(np.count_nonzero(np.any(restored[~hole] != damaged[~hole], axis=-1)))
    error = float(np.abs(restored[hole].astype(float) - image[hole]).mean())
    filled = float(np.abs(restored[hole].astype(float) - damaged[hole]).mean())
    print(
        f"completion: {restored.shape[1]}x{restored.shape[0]} PNG, {changed} known pixels changed, "
        f"hole mean |restored - original| = {error:.1f}/255 (hole was black: {filled:.1f} away from it)"
    )
    if args.out:
        strip = np.concatenate([image, damaged, restored], axis=1)
        Image.fromarray(strip).resize((strip.shape[1] * 4, strip.shape[0] * 4), Image.NEAREST).save(args.out)
        print(f"completion: original | damaged | restored written to {args.out}")
    # Known pixels go back untouched (the API's contract); the hole must actually have been filled.
    return 0 if changed == 0 and filled > 10 else 1


def cmd_burst(args: argparse.Namespace) -> int:
    """Concurrent completions past the queue, plus one malformed request, so every panel has data.

    Clients behave as the API asks: a 503 is retried after its Retry-After (a bounded number of times),
    so the burst shows rejections and still ends in completions.
    """
    fields = {"iterations": str(args.iterations), "restarts": str(args.restarts)}
    busy = Counter[str]()

    def one(index: int) -> int:
        image = _face(args.faces, index)
        hole = _centre_hole(image.shape)
        damaged = image.copy()
        damaged[hole] = 0
        for _ in range(args.attempts):
            status, _, _, retry_after = _post_complete(
                args.url, damaged, hole, dict(fields, seed=str(index)), args.timeout
            )
            if status != 503 or retry_after is None:
                return status
            busy["503"] += 1
            time.sleep(float(retry_after))
        return status

    started = time.monotonic()
    statuses: Counter[int] = Counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        for status in pool.map(one, range(args.requests)):
            statuses[status] += 1
    image = _face(args.faces, 0)
    bad_hole = _centre_hole((image.shape[0] // 2, image.shape[1] // 2))  # mask of another size: a 422
    statuses[_post_complete(args.url, image, bad_hole, fields, args.timeout)[0]] += 1
    summary = ", ".join(f"{count} x HTTP {status}" for status, count in sorted(statuses.items()))
    print(
        f"burst: {args.requests} completions ({args.iterations} iterations x {args.restarts} restarts) from "
        f"{args.concurrency} clients + 1 bad mask in {time.monotonic() - started:.1f} s: final answers {summary}; "
        f"{busy['503']} x HTTP 503 (queue full) retried after Retry-After"
    )
    return 0 if statuses[200] > 0 else 1


def _prom(prom: str, path: str, params: dict[str, str]) -> dict:
    with urllib.request.urlopen(f"{prom}{path}?{urllib.parse.urlencode(params)}", timeout=30) as response:
        answer = json.load(response)
    if answer.get("status") != "success":
        raise RuntimeError(f"Prometheus: {answer}")
    return answer["data"]


def cmd_scraped(args: argparse.Namespace) -> int:
    """Wait until Prometheus has scraped the service; print what it holds."""
    deadline = time.monotonic() + args.timeout
    while True:
        up = _prom(args.prom, "/api/v1/query", {"query": 'up{job="imgcomp"}'})["result"]
        requests = _prom(args.prom, "/api/v1/query", {"query": "imgcomp_requests_total"})["result"]
        if up and up[0]["value"][1] == "1" and requests:
            break
        if time.monotonic() > deadline:
            print(f"prometheus: no imgcomp_ samples after {args.timeout:.0f} s (up={up})", file=sys.stderr)
            return 1
        time.sleep(1)
    names = _prom(args.prom, "/api/v1/label/__name__/values", {})
    ours = sorted(
        {
            n.removesuffix(s)
            for n in names
            if n.startswith("imgcomp_")
            for s in ("_bucket", "_sum", "_count")
            if n.endswith(s)
        }
        | {n for n in names if n.startswith("imgcomp_") and not n.endswith(("_bucket", "_sum", "_count", "_created"))}
    )
    print(f'prometheus: up{{job="imgcomp",instance="{up[0]["metric"]["instance"]}"}} = {up[0]["value"][1]}')
    for series in requests:
        labels = json.dumps(series["metric"], sort_keys=True)
        print(f"prometheus: imgcomp_requests_total{labels} = {series['value'][1]}")
    print(f"prometheus: {len(ours)} imgcomp_ metric families scraped: {', '.join(ours)}")
    return 0


def cmd_panels(args: argparse.Namespace) -> int:
    """Run every panel's PromQL over the burst, require data from each, and draw what Grafana would."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    dashboard = json.loads(args.dashboard.read_text())
    panels = dashboard["panels"]
    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(14, 3.2 * rows), squeeze=False)
    failures = 0
    for panel, axis in zip(panels, axes.flat, strict=False):
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", RATE_WINDOW)
            data = _prom(
                args.prom,
                "/api/v1/query_range",
                {"query": expr, "start": str(args.start), "end": str(args.end), "step": str(args.step)},
            )
            finite_series, points = 0, 0
            for series in data["result"]:
                times = [datetime.fromtimestamp(float(t), UTC) for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                finite = sum(math.isfinite(v) for v in values)
                if finite:
                    finite_series += 1
                    points += finite
                legend = target.get("legendFormat", "")
                for key, value in series["metric"].items():
                    legend = legend.replace("{{" + key + "}}", value)
                axis.plot(times, values, label=legend or expr, linewidth=1.4)
            ok = finite_series > 0
            failures += not ok
            print(
                f"panel {'OK  ' if ok else 'FAIL'} {panel['title']!r}: {expr}\n"
                f"          -> {len(data['result'])} series, {finite_series} with data, {points} points"
            )
        axis.set_title(panel["title"], fontsize=10)
        # One time range for every panel, as in Grafana, and headroom so a flat line stays visible.
        axis.set_xlim(datetime.fromtimestamp(args.start, UTC), datetime.fromtimestamp(args.end, UTC))
        axis.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=7))
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        axis.set_ylabel({"s": "seconds", "reqps": "per second"}.get(unit, ""))
        axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        peaks = [
            np.nanmax(ys)
            for ys in (np.asarray(line.get_ydata(), float) for line in axis.get_lines())
            if np.isfinite(ys).any()
        ]
        top = max(peaks, default=0.0)
        axis.set_ylim(0, (top if top > 0 else 1) * 1.2)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    started = datetime.fromtimestamp(args.start, UTC).strftime("%Y-%m-%d %H:%M")
    figure.suptitle(
        f"{dashboard['title']}: the Grafana dashboard's queries against the smoke stack's "
        f"Prometheus ({started} UTC, rate window {RATE_WINDOW})",
        fontsize=11,
    )
    figure.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.png, dpi=90)
    print(
        f"panels: {sum(len(p['targets']) for p in panels) - failures} of "
        f"{sum(len(p['targets']) for p in panels)} queries returned data; drawn to {args.png}"
    )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    complete = commands.add_parser("complete", help="one real completion, checked")
    burst = commands.add_parser("burst", help="concurrent completions past the queue size")
    for sub in (complete, burst):
        sub.add_argument("--url", required=True)
        sub.add_argument("--faces", type=Path, required=True, help="the shared UTKFace .npz")
        sub.add_argument("--iterations", type=int, default=200)
        sub.add_argument("--restarts", type=int, default=2)
        sub.add_argument("--timeout", type=float, default=300)
    complete.add_argument("--index", type=int, default=0, help="which face")
    complete.add_argument("--out", type=Path, help="write original | damaged | restored here")
    complete.set_defaults(func=cmd_complete)
    burst.add_argument("--requests", type=int, default=16)
    burst.add_argument("--concurrency", type=int, default=8)
    burst.add_argument("--attempts", type=int, default=30, help="tries per request while the queue is full")
    burst.set_defaults(func=cmd_burst)

    scraped = commands.add_parser("scraped", help="wait for Prometheus to hold the service's metrics")
    scraped.add_argument("--prom", required=True)
    scraped.add_argument("--timeout", type=float, default=60)
    scraped.set_defaults(func=cmd_scraped)

    panels = commands.add_parser("panels", help="every dashboard query against Prometheus, drawn")
    panels.add_argument("--prom", required=True)
    panels.add_argument("--dashboard", type=Path, required=True)
    panels.add_argument("--start", type=float, required=True)
    panels.add_argument("--end", type=float, required=True)
    panels.add_argument("--step", type=float, default=5)
    panels.add_argument("--png", type=Path, required=True)
    panels.set_defaults(func=cmd_panels)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
