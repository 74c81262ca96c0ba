"""`python -m app serve` reads each weight file once: what it verifies before uvicorn starts is what it serves."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi import FastAPI

import app.__main__ as cli
import app.serving as serving
import training.checkpoint as checkpoint
from app.config import Settings
from app.main import create_app
from tests.app.conftest import center_hole, damaged, encode, free_port, mask_png
from tests.app.glcic_store import save_tiny_glcic


@pytest.fixture
def store(make_tiny_store: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A search and a one-pass version (whose discriminators are verified but not served), named by IMGCOMP_*."""
    root = make_tiny_store(("tiny",))
    save_tiny_glcic(root)
    for name in [name for name in os.environ if name.startswith("IMGCOMP_")]:
        monkeypatch.delenv(name)
    env = {"MODEL_STORE": str(root), "DEFAULT_MODEL": "tiny", "DEVICES": "cpu", "METRICS_PORT": "public"}
    for name, value in env.items():
        monkeypatch.setenv(f"IMGCOMP_{name}", value)
    yield root


def _answers(app: FastAPI, face: np.ndarray) -> list[bytes]:
    """Each model's answer to one request, through the app with its lifespan run (start-up, then shut-down)."""
    hole = center_hole(*face.shape[:2])
    files = {"image": ("face.png", encode(damaged(face, hole)), "image/png"), "mask": ("m.png", mask_png(hole))}

    async def main() -> list[bytes]:
        bodies = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve", timeout=60) as client:
                for data in ({"model": "tiny", "iterations": "3"}, {"model": "tiny-glcic"}):
                    answer = await client.post("/complete", files=files, data=data)
                    assert answer.status_code == 200, answer.text
                    bodies.append(answer.content)
        return bodies

    return asyncio.run(main())


def test_serve_reads_every_weight_file_once_and_answers_as_a_fresh_load_does(
    store: Path, faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: Counter[str] = Counter()
    real = checkpoint._load_weights

    def counted(module: torch.nn.Module, path: Path, expected_sha: str | None) -> None:
        reads[str(path.relative_to(store))] += 1
        real(module, path, expected_sha)

    monkeypatch.setattr(checkpoint, "_load_weights", counted)
    served: list[list[bytes]] = []

    class LifespanOnly:
        """uvicorn's serving loop left out: the app `serve` built starts, answers, and stops."""

        started = True

        def __init__(self, config: Any, app: FastAPI, settings: Settings) -> None:
            self.app = app

        def run(self, sockets: list[Any]) -> None:
            sockets[0].close()
            served.append(_answers(self.app, faces[510]))

    monkeypatch.setattr(serving, "draining_server", LifespanOnly)
    assert cli.main(["serve", "--port", str(free_port())]) == 0
    files = sorted(str(path.relative_to(store)) for path in store.glob("*/*/*.safetensors"))
    assert len(files) == 5  # G and D; the one-pass model's completion network and its two discriminators
    # every file verified (the discriminators a one-pass model does not serve included), none read a second time
    assert reads == dict.fromkeys(files, 1), reads
    # the verified networks, copied onto the device, answer byte for byte as networks read from disk do
    reads.clear()
    assert served == [_answers(create_app(Settings()), faces[510])]
    assert set(reads) < set(files)  # that app read only the served networks, from disk
