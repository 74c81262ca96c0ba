"""`region=auto` through a real server with the shipped `faces:2`: held-out faces placed in photos."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.engine.inpaint import telea
from app.quality.scenes import FACE_BOXES, scene
from tests.app.conftest import decode, encode, mask_png, serving
from tests.conftest import SHIPPED_STORE
from tests.faces.conftest import held_out  # noqa: F401


@pytest.fixture(scope="module")
def faces_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped faces:2 alone (a link), so the server starts in seconds."""
    root = tmp_path_factory.mktemp("store")
    (root / "faces").mkdir()
    (root / "faces" / "2").symlink_to(SHIPPED_STORE / "faces" / "2", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def http(faces_store: Path) -> Iterator[httpx.Client]:
    with serving(faces_store, default_model="faces", face_models=("faces",), default_iterations=None) as client:
        yield client


def _post(http: httpx.Client, image: np.ndarray, hole: np.ndarray, **data: str) -> httpx.Response:
    return http.post(
        "/complete",
        files={"image": encode(image), "mask": mask_png(hole)},
        data=data,
        headers={"Accept": "application/json"},
    )


def _image(answer: dict) -> np.ndarray:
    return decode(base64.b64decode(answer["image"]))


def _face_at(answer: dict, item) -> dict:
    for face in answer["faces"]:
        if item.is_face(*face["box"]):
            return face
    raise AssertionError(f"no face found on {item.name}: {answer['faces']}")


def test_a_damaged_face_in_a_photo_is_restored_in_its_framing(http: httpx.Client, held_out) -> None:  # noqa: F811
    """The nose-and-mouth block on a held-out face at ~100 px: found, framed, completed by faces:2, pasted back,
    known pixels byte-identical, and the headers and JSON say what was done."""
    item = scene(3, "nose-mouth", held_out[3])
    damaged = item.image.copy()
    damaged[item.hole] = 0
    response = _post(http, damaged, item.hole)
    assert response.status_code == 200, response.text
    answer = response.json()
    face = _face_at(answer, item)
    assert face["status"] == "restored" and face["model"] == "faces:2" and face["source"] == "detected"
    assert answer["region"] == "auto" and answer["fallback"] == "classical"
    assert response.headers["x-faces"] == "1" and answer["timings"]["locate_s"] > 0
    out = _image(answer)
    assert np.array_equal(out[~item.hole], item.image[~item.hole])
    classical = telea(damaged, item.hole)
    assert np.abs(out[item.hole].astype(int) - classical[item.hole]).mean() > 5  # the face model's fill, not Telea's
    metrics = http.get("/metrics").text
    assert 'imgcomp_faces_total{outcome="restored"}' in metrics and "imgcomp_face_locate_seconds_count" in metrics


def test_a_photo_with_no_face_gets_the_whole_photo_answer(http: httpx.Client) -> None:
    rng = np.random.default_rng(5)
    image = np.clip(rng.normal(120, 20, (96, 128, 3)), 0, 255).astype(np.uint8)
    hole = np.zeros((96, 128), dtype=bool)
    hole[30:60, 40:90] = True
    auto = _post(http, image, hole)
    whole = _post(http, image, hole, region="whole")
    assert auto.status_code == whole.status_code == 200
    assert auto.json()["faces"] == [] and auto.json()["fallback"] == "whole" and auto.headers["x-faces"] == "0"
    assert auto.json()["image"] == whole.json()["image"]


def test_a_box_the_caller_gives_is_used(http: httpx.Client, held_out) -> None:  # noqa: F811
    """The caller's boxes replace the locator's, and each is framed by the landmarks found inside it."""
    item = scene(3, "eyes", held_out[3])
    damaged = item.image.copy()
    damaged[item.hole] = 0
    corners = item.to_scene[:, :2] @ np.array([[0, 0], [200, 200]]).T + item.to_scene[:, 2:3]
    x, y = corners.min(axis=1).astype(int)
    side = int(item.side)
    response = _post(http, damaged, item.hole, faces=f"{x},{y},{side},{side}")
    assert response.status_code == 200, response.text
    reports = response.json()["faces"]
    assert [(face["source"], face["status"]) for face in reports] == [("given", "restored")]
    assert abs(reports[0]["side"] - item.side) < 0.25 * item.side  # the landmarks' framing, not the box's


def test_a_face_no_framing_explains_is_refused_and_gets_the_classical_fill(faces_store: Path, held_out) -> None:  # noqa: F811
    """Above IMGCOMP_FACE_ERROR_LIMIT (here set below any face's error) the box is refused; with no face left the
    photo gets the whole-photo answer, and the answer says so."""
    item = scene(3, "nose-mouth", held_out[3])
    damaged = item.image.copy()
    damaged[item.hole] = 0
    with serving(faces_store, default_model="faces", face_models=("faces",), face_error_limit=0.01) as client:
        response = _post(client, damaged, item.hole, blend="none")
    assert response.status_code == 200, response.text
    face = _face_at(response.json(), item)
    assert face["status"] == "not-a-face" and face["known_error"] > 0.01
    assert response.json()["fallback"] == "whole"
    assert response.headers["x-faces"] == "0"


def _two_faces_under_one_block(held_out) -> tuple[np.ndarray, np.ndarray]:  # noqa: F811
    """Two held-out faces side by side at 180 px, one block across both pairs of eyes."""
    canvas = np.full((300, 400, 3), 90, dtype=np.uint8)
    hole = np.zeros((300, 400), dtype=bool)
    for k, left in enumerate((10, 210)):
        face = np.asarray(Image.fromarray(held_out[4 + k][1]).resize((180, 180), Image.Resampling.LANCZOS))
        canvas[60:240, left : left + 180] = face
    (x0, y0), (x1, y1) = FACE_BOXES["eyes"]
    hole[60 + int(y0 * 0.9) : 60 + int(y1 * 0.9), 10 + int(x0 * 0.9) : 210 + int(x1 * 0.9)] = True
    return canvas, hole


def test_two_faces_under_one_hole_are_both_restored(http: httpx.Client, held_out) -> None:  # noqa: F811
    """Two faces, one hole: two jobs, one answer."""
    canvas, hole = _two_faces_under_one_block(held_out)
    damaged = canvas.copy()
    damaged[hole] = 0
    response = _post(http, damaged, hole)
    assert response.status_code == 200, response.text
    restored = [face for face in response.json()["faces"] if face["status"] == "restored"]
    assert len(restored) == 2, response.json()["faces"]
    assert np.array_equal(_image(response.json())[~hole], canvas[~hole])


def test_faces_over_the_servers_cap_are_reported_and_take_the_classical_fill(
    faces_store: Path,
    held_out,  # noqa: F811
) -> None:
    """IMGCOMP_MAX_FACES bounds the searches a photo costs: with a cap of one, the second face is reported
    `over-the-cap` and its part of the hole gets the classical fill, not a face."""
    canvas, hole = _two_faces_under_one_block(held_out)
    damaged = canvas.copy()
    damaged[hole] = 0
    with serving(faces_store, default_model="faces", face_models=("faces",), max_faces=1) as client:
        response = _post(client, damaged, hole)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert sorted(face["status"] for face in answer["faces"]) == ["over-the-cap", "restored"], answer["faces"]
    assert response.headers["x-faces"] == "1" and answer["fallback"] == "classical"
    capped = next(face for face in answer["faces"] if face["status"] == "over-the-cap")
    x, y, w, h = capped["box"]
    on_capped = hole.copy()
    on_capped[:, : max(x, 0)] = on_capped[:, x + w :] = False
    on_capped[: max(y, 0)] = on_capped[y + h :] = False
    out = _image(answer)
    assert np.array_equal(out[~hole], canvas[~hole])
    classical = telea(damaged, hole)
    assert np.abs(out[on_capped].astype(int) - classical[on_capped]).mean() < 8


def test_a_face_below_the_floor_is_too_small_and_the_photo_gets_the_whole_answer(
    http: httpx.Client,
    held_out,  # noqa: F811
) -> None:
    """A face smaller than IMGCOMP_MIN_FACE_PX (32 px) is a few model pixels: reported `too-small`, never
    searched, and with no face restored the photo takes the whole-photo answer."""
    canvas = np.full((160, 200, 3), 90, dtype=np.uint8)
    canvas[60:84, 80:104] = np.asarray(Image.fromarray(held_out[4][1]).resize((24, 24), Image.Resampling.LANCZOS))
    hole = np.zeros((160, 200), dtype=bool)
    hole[66:72, 84:100] = True
    damaged = canvas.copy()
    damaged[hole] = 0
    auto = _post(http, damaged, hole, faces="80,60,24,24")
    whole = _post(http, damaged, hole, region="whole")
    assert auto.status_code == whole.status_code == 200, auto.text
    assert [face["status"] for face in auto.json()["faces"]] == ["too-small"]
    assert auto.headers["x-faces"] == "0" and auto.json()["fallback"] == "whole"
    assert auto.json()["image"] == whole.json()["image"]


def test_an_aligned_crop_takes_the_whole_photo_answer(http: httpx.Client, held_out) -> None:  # noqa: F811
    """A face that fills the upload is already framed as in training: the whole-photo answer, byte for byte."""
    face = held_out[2][1]
    hole = np.zeros(face.shape[:2], dtype=bool)
    hole[110:160, 60:140] = True
    damaged = face.copy()
    damaged[hole] = 0
    auto, whole = _post(http, damaged, hole), _post(http, damaged, hole, region="whole")
    assert auto.status_code == whole.status_code == 200
    assert [f["status"] for f in auto.json()["faces"]] == ["fills-the-photo"]
    assert auto.json()["image"] == whole.json()["image"] and auto.json()["fallback"] == "whole"


@pytest.mark.parametrize(
    ("faces", "says"),
    [
        ("12,13", "is not x,y,w,h"),
        ("10,10,0,20", "has no size"),
        ("900,10,20,20", "outside"),
        (";".join(["1,1,30,30"] * 50), "over the server's"),
    ],
)
def test_bad_face_boxes_are_422(http: httpx.Client, faces: str, says: str) -> None:
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    hole = np.zeros((64, 96), dtype=bool)
    hole[20:30, 20:30] = True
    response = _post(http, image, hole, faces=faces)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]


def test_region_auto_on_a_model_that_knows_no_faces_is_422(faces_store: Path) -> None:
    with serving(faces_store, default_model="faces", face_models=()) as client:
        image = np.zeros((64, 64, 3), dtype=np.uint8)
        hole = np.zeros((64, 64), dtype=bool)
        hole[20:30, 20:30] = True
        response = _post(client, image, hole, region="auto")
        assert response.status_code == 422 and "needs a face model" in response.json()["detail"]
        assert _post(client, image, hole).status_code == 200  # no region: the whole photo, as before


def test_a_box_given_on_the_background_is_refused_and_the_face_beside_it_restored(
    http: httpx.Client,
    held_out,  # noqa: F811
) -> None:
    """A caller's box on the scene's background (not the face) gets no face pasted into it: the detectors,
    looking closer than the locator, see none there; the real face given beside it is restored."""
    item = scene(3, "nose-mouth", held_out[3])
    corners = item.to_scene[:, :2] @ np.array([[0, 0], [200, 200]]).T + item.to_scene[:, 2:3]
    x, y = corners.min(axis=1).astype(int)
    side = int(item.side)
    face_box = (x, y, side, side)
    # the same size, on the other half of the photo
    wall = (20 if x > 320 else 600 - side, 20 if y > 240 else 460 - side, side, side)
    hole = item.hole.copy()
    hole[wall[1] + side // 3 : wall[1] + 2 * side // 3, wall[0] + side // 4 : wall[0] + 3 * side // 4] = True
    damaged = item.image.copy()
    damaged[hole] = 0
    boxes = ";".join(",".join(map(str, box)) for box in (face_box, wall))
    response = _post(http, damaged, hole, faces=boxes)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [(face["box"], face["status"]) for face in answer["faces"]] == [
        (list(face_box), "restored"),
        (list(wall), "not-a-face"),
    ]
    assert answer["fallback"] == "classical" and response.headers["x-faces"] == "1"
    out = _image(answer)
    assert np.array_equal(out[~hole], item.image[~hole])
    on_wall = hole & ~item.hole
    classical = telea(damaged, hole)
    # the wall's hole took the classical fill (the same method, made on the hole's bounding box)
    assert np.abs(out[on_wall].astype(int) - classical[on_wall]).mean() < 8
