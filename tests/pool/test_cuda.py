"""The pool and the service on a CUDA device: both model kinds in bf16 and fp16, the encoder's start, a reload.

Skipped without CUDA (CI has none); `scripts/gpu-check.sh` runs them where there is a GPU. The shipped
64x64 face models (`faces:1`, `faces:2` with its encoder, `faces-glcic:1`) complete held-out faces; every
CUDA answer is checked against the same job answered by the CPU in fp32 in the same test. With
`IMGCOMP_GPU_CHECK_OUT` set, the measured figures are appended to `cuda-tests.jsonl` there for the report.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from app.engine.kinds import Job, Params, Runner
from app.engine.onepass import OnePassParams
from app.engine.search import SearchParams, SearchResult, params_for
from app.loading import load_runners
from app.metrics import Metrics
from app.pool import IterationPool
from app.store import ModelStore
from tests.app.conftest import center_hole, decode, encode, mask_png, serving
from tests.conftest import FACES_NPZ, SHIPPED_STORE
from training.checkpoint import read_card
from training.masks import make_mask

# IMGCOMP_CUDA_TEST_DEVICE=cpu runs the bf16 cases on the CPU: a check of the tests themselves, not of CUDA
DEVICE = os.environ.get("IMGCOMP_CUDA_TEST_DEVICE", "cuda:0")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(),
    reason="needs a CUDA device: scripts/gpu-check.sh runs these where there is one",
)

SEARCH, ONE_PASS, PREVIOUS = "faces:2", "faces-glcic:1", "faces:1"
R = 64
CASES = 6  # held-out faces per start
HOLES = ("center", "strokes", "blocks")
STARTS: dict[str, tuple[str, Params]] = {
    "search, encoder start (its defaults)": (SEARCH, params_for(True)),
    "encoder guess (iterations=0)": (SEARCH, params_for(True, iterations=0)),
    "search, random start (60 it x 2)": (SEARCH, params_for(True, init="random", iterations=60, restarts=2)),
    "one pass (glcic)": (ONE_PASS, OnePassParams()),
}
# a forward pass in bf16/fp16 against fp32 on the CPU: mean |difference| in [-1, 1] units (0.02 is ~2.5 levels)
FORWARD_TOLERANCE = {"bf16": 0.04, "fp16": 0.02}
# a search in reduced precision follows another path from the same start; its hole may be this much worse
SEARCH_PSNR_SLACK_DB = 1.5


def record(entry: dict[str, object]) -> None:
    """One line of figures for scripts/gpu_check_report.py, where the script asked for them."""
    folder = os.environ.get("IMGCOMP_GPU_CHECK_OUT")
    if folder:
        with (Path(folder) / "cuda-tests.jsonl").open("a") as handle:
            handle.write(json.dumps(entry) + "\n")


def hole_psnr(generated: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor) -> float:
    """PSNR over the hole's pixels, in 8-bit levels, of a [-1, 1] answer against the true face."""
    levels = ((generated.float().clamp(-1, 1) + 1) * 127.5).round()
    error = (levels - (truth + 1) * 127.5)[:, hole]
    return float(10 * torch.log10(255.0**2 / error.pow(2).mean().clamp_min(1e-10)))


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """Faces neither shipped 64x64 face model trained on, (N, 3, R, R) in [-1, 1]."""
    names = set(read_card(SHIPPED_STORE / "faces" / "2")["dataset"]["held_out"])
    names &= set(read_card(SHIPPED_STORE / "faces-glcic" / "1")["dataset"]["held_out"])
    with np.load(FACES_NPZ) as archive:
        index = [i for i, name in enumerate(archive["filenames"]) if str(name) in names][: CASES * len(HOLES)]
        images = archive["images"][index]
    assert len(images) == CASES * len(HOLES), f"{FACES_NPZ} holds too few of the held-out faces"
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@pytest.fixture(scope="module")
def cases(held_out: torch.Tensor) -> list[tuple[str, str, Job, torch.Tensor]]:
    """(start, model key, job, truth) for every start on the same damaged faces; each face its own hole and seed."""
    out = []
    for start, (model, params) in STARTS.items():
        for index, truth in enumerate(held_out):
            hole = torch.from_numpy(make_mask(HOLES[index % len(HOLES)], R, np.random.default_rng(index)))
            seeded = replace(params, seed=index) if isinstance(params, SearchParams) else params
            job = _store().resolve(model).served.job(truth.masked_fill(hole, 0.0), hole, seeded)
            out.append((start, model, job, truth))
    return out


def _store() -> ModelStore:
    return ModelStore.discover(SHIPPED_STORE, "faces")


def runners_on(device: str, precision: str) -> dict[str, Runner]:
    store = _store()
    entries = [store.resolve(SEARCH), store.resolve(ONE_PASS)]
    return load_runners(entries, [device], precision)[0]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cpu_answers(cases: list[tuple[str, str, Job, torch.Tensor]]) -> list[SearchResult]:
    """The reference: every case on the CPU in fp32, each model's jobs in one batch."""
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    runners = runners_on("cpu", "fp32")
    answers: dict[int, SearchResult] = {}
    for model in (SEARCH, ONE_PASS):
        picked = [i for i, case in enumerate(cases) if case[1] == model]
        for i, result in zip(picked, runners[model].run([cases[i][2] for i in picked]), strict=True):
            answers[i] = result
    torch.set_num_threads(1)
    return [answers[i] for i in range(len(cases))]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_pool_serves_both_kinds_on_cuda_as_well_as_the_cpu_does(
    precision: str, cases: list[tuple[str, str, Job, torch.Tensor]], cpu_answers: list[SearchResult]
) -> None:
    """Every start of the search and the one-pass model, all submitted at once, so they share steps."""
    pool = IterationPool([(DEVICE, runners_on(DEVICE, precision))], Metrics(), 64, 256)
    pool.start()

    async def main() -> list[SearchResult]:
        return list(await asyncio.gather(*(pool.submit(model, job) for _, model, job, _ in cases)))

    try:
        answers = asyncio.run(main())
    finally:
        pool.stop()
    for start in STARTS:
        picked = [i for i, case in enumerate(cases) if case[0] == start]
        for i in picked:
            assert torch.isfinite(answers[i].generated).all(), f"{start}: a non-finite pixel in {precision}"
        gpu = np.mean([hole_psnr(answers[i].generated, cases[i][3], cases[i][2].hole) for i in picked])
        cpu = np.mean([hole_psnr(cpu_answers[i].generated, cases[i][3], cases[i][2].hole) for i in picked])
        difference = float(
            np.mean([(answers[i].generated - cpu_answers[i].generated).abs().mean().item() for i in picked])
        )
        iterations = [answers[i].iterations for i in picked]
        record(
            {
                "test": "pool",
                "precision": precision,
                "start": start,
                "cases": len(picked),
                "hole_psnr_cuda_db": round(float(gpu), 2),
                "hole_psnr_cpu_fp32_db": round(float(cpu), 2),
                "mean_abs_diff_vs_cpu_fp32": round(difference, 4),
                "iterations": f"{min(iterations)}-{max(iterations)}",
                "seconds_max": round(max(answers[i].seconds for i in picked), 3),
            }
        )
        if start.startswith(("encoder guess", "one pass")):  # one forward: the same function in less precision
            assert difference < FORWARD_TOLERANCE[precision], f"{start} in {precision}: {difference:.4f} from fp32"
        assert gpu > cpu - SEARCH_PSNR_SLACK_DB, f"{start} in {precision}: hole {gpu:.2f} dB against {cpu:.2f} on CPU"


def test_a_search_alone_and_among_others_on_cuda(cases: list[tuple[str, str, Job, torch.Tensor]]) -> None:
    """Batch invariance on CUDA is not promised (cuDNN picks kernels per batch size): measured and recorded;
    only the quality of the answer is asserted."""
    pool = IterationPool([(DEVICE, runners_on(DEVICE, "bf16"))], Metrics(), 64, 256)
    pool.start()
    target = next(i for i, case in enumerate(cases) if case[0].startswith("search, random"))

    async def main() -> tuple[SearchResult, SearchResult]:
        alone = await pool.submit(SEARCH, cases[target][2])
        others = [pool.submit(model, job) for i, (_, model, job, _) in enumerate(cases) if i != target]
        among = await pool.submit(SEARCH, cases[target][2])
        await asyncio.gather(*others)
        return alone, among

    try:
        alone, among = asyncio.run(main())
    finally:
        pool.stop()
    levels = [((r.generated.clamp(-1, 1) + 1) * 127.5).round() for r in (alone, among)]
    hole = cases[target][2].hole
    record(
        {
            "test": "alone vs among others",
            "precision": "bf16",
            "max_level_diff_in_hole": float((levels[0] - levels[1])[:, hole].abs().max()),
            "hole_psnr_alone_db": round(hole_psnr(alone.generated, cases[target][3], hole), 2),
            "hole_psnr_among_db": round(hole_psnr(among.generated, cases[target][3], hole), 2),
        }
    )
    assert alone.iterations == among.iterations == 60
    for result in (alone, among):
        assert torch.isfinite(result.generated).all()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store serving only `faces:1` at first: the shipped folder linked in, as the bench's servers do."""
    root = tmp_path / "model_store"
    (root / "faces").mkdir(parents=True)
    (root / "faces" / "1").symlink_to(SHIPPED_STORE / "faces" / "1", target_is_directory=True)
    return root


def _complete(http: httpx.Client, face: np.ndarray, **data: str) -> tuple[httpx.Response, np.ndarray]:
    hole = center_hole(R, R)
    upload = face.copy()
    upload[hole] = 128
    files = {"image": ("face.png", encode(upload)), "mask": ("m.png", mask_png(hole))}
    # the upload is a whole face crop: completed whole (a server without face regions ignores the field)
    return http.post("/complete", files=files, data={"region": "whole", **data}), upload


@pytest.fixture
def cuda_server(store: Path) -> Iterator[httpx.Client]:
    """The service on the GPU with an API token (a reload needs one) and a client that sends it."""
    token = "gpu-check"
    with serving(
        store,
        devices=DEVICE,
        precision="bf16",
        default_model="faces",
        default_iterations=None,
        default_restarts=None,
        api_token=token,
    ) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


def test_a_reload_on_cuda_serves_the_new_versions_of_both_kinds(
    cuda_server: httpx.Client, store: Path, faces: np.ndarray
) -> None:
    """The service on CUDA: faces:1 answers; faces:2 (with its encoder) and faces-glcic:1 appear by a reload."""
    http = cuda_server
    hole = center_hole(R, R)
    first, upload = _complete(http, faces[0], model=PREVIOUS, iterations="50", restarts="2")
    assert first.status_code == 200, first.text
    assert (first.headers["x-model"], first.headers["x-init"]) == (PREVIOUS, "random")
    np.testing.assert_array_equal(decode(first.content)[~hole], upload[~hole])

    (store / "faces" / "2").symlink_to(SHIPPED_STORE / "faces" / "2", target_is_directory=True)
    (store / "faces-glcic").mkdir()
    (store / "faces-glcic" / "1").symlink_to(SHIPPED_STORE / "faces-glcic" / "1", target_is_directory=True)
    reloaded = http.post("/v1/models/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert sorted(reloaded.json()["loaded"]) == [ONE_PASS, SEARCH]

    timings = {}
    for model, init, extra in [
        (SEARCH, "encoder", {}),
        (SEARCH, "encoder", {"iterations": "0"}),
        (ONE_PASS, "none", {}),
    ]:
        response, upload = _complete(http, faces[1], model=model, **extra)
        assert response.status_code == 200, response.text
        assert (response.headers["x-model"], response.headers["x-init"]) == (model, init)
        restored = decode(response.content)
        np.testing.assert_array_equal(restored[~hole], upload[~hole])
        assert np.abs(restored[hole].astype(int) - 128).mean() > 5.0, f"{model} {extra}: the hole is still grey"
        timings[f"{model} {extra or 'defaults'}"] = float(response.headers["x-total-seconds"])
    record({"test": "reload over HTTP", "precision": "bf16", "x_total_seconds": timings})
