"""Where the server's time outside the model goes: the request path's stages run in-process under cProfile.

Decode (`decode_upload`), prepare, finish (blend, edge fill, composition) and PNG encoding of the bench's
uploads (`app.bench.outside`), with a fixed generator answer in place of the search; `--tree` runs another
checkout's code (e.g. the `git worktree` scripts/bench_outside.py makes of the commit before). Prints, per
upload, each stage's CPU milliseconds (best of `--repeats`) and the functions with the most own time.

    python scripts/profile_outside.py --tree /tmp/imgcomp-before > docs/bench/outside-the-model/profile-before.txt
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _best_cpu_ms(work: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best * 1000


def _uploads() -> Any:
    """This checkout's `app.bench.outside`, loaded by path: the commit before has none, and `app` may be its."""
    spec = importlib.util.spec_from_file_location("outside_uploads", REPO / "app" / "bench" / "outside.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tree", type=Path, help="the checkout whose `app` runs (default: this one)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--top", type=int, default=12, help="functions listed per upload (default 12)")
    args = parser.parse_args(argv)
    if args.tree is not None:
        sys.path.insert(0, str(args.tree.resolve()))
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # as the server sizes its pools (app.threads), whichever tree runs
    from app.api.uploads import decode_upload, encode_image
    from app.engine.compose import finish, prepare

    root = Path(sys.modules["app.api.uploads"].__file__ or "").parents[2]
    print(f"app from {root.name}; CPU ms, best of {args.repeats}")
    generated = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    uploads = _uploads()
    for width, height in uploads.SIZES:
        image_data, mask_data = uploads.upload(width, height)
        decoded = decode_upload(image_data, mask_data, 50_000_000)
        restored = finish(decoded.image, decoded.hole, generated)
        stages: dict[str, Callable[[], Any]] = {
            "decode": lambda: decode_upload(image_data, mask_data, 50_000_000),  # noqa: B023 (run at once)
            "prepare": lambda: prepare(decoded.model_image, decoded.hole, 64),  # noqa: B023
            "finish": lambda: finish(decoded.image, decoded.hole, generated),  # noqa: B023
            "encode": lambda: encode_image(restored, "png", None),  # noqa: B023
        }
        times = {name: _best_cpu_ms(work, args.repeats) for name, work in stages.items()}
        print(f"\n## {width}x{height}: " + ", ".join(f"{name} {ms:.1f}" for name, ms in times.items()))
        profile = cProfile.Profile()
        profile.enable()
        for work in stages.values():
            work()
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.top)
        # paths relative to the checkout and the environment: the listing says where, not on which machine
        listing = text.getvalue().replace(f"{root}/", "").replace(f"{sys.prefix}/", "<env>/")
        print("\n".join(line for line in listing.splitlines() if line.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
