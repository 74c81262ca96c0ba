"""A damaged face's framing corrected by the framing network (`python -m training framing`).

dlib's landmarks inside a hole are guesses, and a framing fitted to the points that survived
is fixed by two points or fewer: on the held-out scenes the landmark framing lands 4-5 crop
pixels off with the eyes blocked and 15 with half the face gone, and each pixel costs the
restored face (docs/evaluation/faces-framing). The network sees the crop a framing gives, hole
and all, and says where the template's eyes and nose are in it; the similarity taking them onto
the template corrects the framing, and further looks correct what is left.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from app.faces.align import TEMPLATE, Framing, similarity, warp_in
from app.store import version_order
from training.checkpoint import load_model, read_card
from training.framing_data import compose
from training.framing_net import FramingNet, network_input
from training.kinds import FRAMING

# looks per face; measured with faces-framing:1 on 30 held-out scenes per family (median error in
# crop pixels of 200, landmarks -> 1 / 2 / 3 looks): eyes 4.8 -> 2.3 / 1.6 / 1.6, nose-mouth 3.6 -> 2.4 / 2.2 / 2.3,
# half 15.4 -> 3.7 / 2.5 / 1.9, strokes 2.0 -> 1.2 / 1.2 / 1.3; each look costs a few milliseconds per face
LOOKS = 3


class FaceFramer:
    """The framing network on the CPU: a few milliseconds per face, so it runs beside the locator."""

    def __init__(self, net: FramingNet, key: str) -> None:
        self.net = net.eval()
        self.key = key
        self.resolution = net.config.resolution
        self._lock = threading.Lock()  # one forward at a time: the thread pool may ask for two photos at once

    @classmethod
    def discover(cls, store: Path, name: str) -> FaceFramer | None:
        """The latest version of the framing model `name` in the store; None when there is none (or no name)."""
        if not name:
            return None
        folders = [
            path.parent
            for path in sorted((Path(store) / name).glob("*/model.json"))
            if not path.parent.name.startswith(".")
        ]
        framers = [folder for folder in folders if read_card(folder).get("kind") == FRAMING.name]
        if not framers:
            return None
        latest = max(framers, key=lambda folder: version_order(folder.name))
        net = load_model(latest, "cpu").networks["framer"]
        assert isinstance(net, FramingNet)
        return cls(net, f"{name}:{latest.name}")

    def refine(self, image: np.ndarray, hole: np.ndarray, framings: list[Framing]) -> list[Framing]:
        """Each framing corrected by `LOOKS` looks of the network at the crop it gives."""
        if not framings:
            return []
        for _ in range(LOOKS):
            crops = [warp_in(image, hole, framing, self.resolution) for framing in framings]
            pixels = torch.stack([crop.target for crop in crops])
            known = ~torch.stack([crop.hole for crop in crops])
            with self._lock, torch.inference_mode():
                points = self.net(network_input(pixels, known)).double().numpy()
            framings = [
                Framing(compose(similarity(found, TEMPLATE), framing.matrix)) if bool(crop_known.any()) else framing
                for found, framing, crop_known in zip(points, framings, known, strict=True)
            ]
        return framings
