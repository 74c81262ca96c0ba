// The restore page: open a photo, paint the hole, send both to POST /complete, compare the answer.
// Plain browser JavaScript, no dependencies: the page must work offline, served by the API itself.
"use strict";

const TOKEN_KEY = "imgcomp-token";
const MAX_UNDO = 30;
const UNDO_PIXELS = 40e6; // snapshots of a large photo are width x height x 4 bytes each
const MAX_RETRIES = 30;
const MASK_COLOR = "#ff2d6f";

// Presets per start (see app/engine/search.py DEFAULTS and the README's "Fast completions"):
// from the encoder's guess the hole already sets the measured best budget, so "fast" is the
// one-pass guess and "best" only adds restarts; a random start needs iterations to get anywhere.
const PRESETS = {
  encoder: {
    fast: { fields: { iterations: 0 }, text: "The encoder's one-pass guess, no search (fastest)" },
    default: { fields: {}, text: "The server's defaults: the encoder's guess, then a search as long as the hole needs" },
    best: { fields: { restarts: 4 }, text: "The default search from four starts near the guess, lowest loss wins (about 4x the work)" },
  },
  random: {
    fast: { fields: { iterations: 100, restarts: 1 }, text: "100 iterations from one random start" },
    default: { fields: {}, text: "The server's defaults (400 iterations x 2 restarts unless its operator changed them)" },
    best: { fields: { iterations: 400, restarts: 4 }, text: "400 iterations x 4 restarts, lowest loss wins (about 2x the default)" },
  },
};

const $ = (id) => document.getElementById(id);
const el = {
  file: $("file"), fileName: $("file-name"), drop: $("drop"), stage: $("stage"), photo: $("photo"), mask: $("mask"),
  ring: $("ring"), size: $("size"), sizeValue: $("size-value"), undo: $("undo"), clear: $("clear"), alpha: $("alpha"),
  presets: $("presets"), maskInfo: $("mask-info"), model: $("model"), modelHint: $("model-hint"), samples: $("samples"),
  modelCaption: $("model-caption"), presetInfo: $("preset-info"), custom: $("custom"), iterations: $("iterations"),
  restarts: $("restarts"), submit: $("submit"), cancel: $("cancel"), status: $("status"), result: $("result"),
  compare: $("compare"), before: $("before"), after: $("after"), divider: $("divider"), split: $("split"),
  timings: $("timings"), download: $("download"), tokenDialog: $("token-dialog"), tokenForm: $("token-form"),
  token: $("token"), tokenDetail: $("token-detail"), tokenCancel: $("token-cancel"), faces: $("faces"),
  facesInfo: $("faces-info"),
};

const state = {
  file: null,          // the File as opened: sent as is, so every known pixel comes back byte-identical
  bitmap: null,
  transparent: null,   // Uint8Array, 1 where the image's alpha < 255; null when fully opaque
  undo: [],
  painting: null,      // {id, last: [x, y]} while a pointer paints
  models: [],
  job: null,           // {controller, started, timer} while a request runs
  downloadUrl: null,
  faces: [],           // [{box: [x, y, w, h] in photo pixels, source: "detected"|"given", status?, model?}]
  facesEdited: false,  // the user added, moved or deleted a box: Restore sends them as faces=
  faceModels: null,    // the model names that restore faces (GET from POST /v1/faces); null = not known yet
  facesLookup: 0,      // which photo's lookup is current: a late answer for another photo is dropped
  facesNeedToken: false,
  faceDrag: null,      // {id, mode: "move"|"add", start, from|node} while a pointer edits a box
};

const maskCtx = el.mask.getContext("2d", { willReadFrequently: true });

// ---------- status line ----------

function showStatus(kind, title, detail) {
  el.status.className = "status " + kind;
  el.status.replaceChildren();
  const head = document.createElement("strong");
  head.textContent = title;
  el.status.append(head);
  if (detail) {
    const body = document.createElement("span");
    body.textContent = detail;
    el.status.append(body);
  }
}

function clearStatus() {
  el.status.className = "status";
  el.status.replaceChildren();
}

// ---------- opening a photo ----------

async function openFile(file) {
  if (!file) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    showStatus("error", `This browser cannot read ${file.name}.`, "Open a PNG, JPEG or WebP image.");
    return;
  }
  state.file = file;
  state.bitmap = bitmap;
  const { width, height } = bitmap;
  for (const canvas of [el.photo, el.mask]) {
    canvas.width = width;
    canvas.height = height;
  }
  const photoCtx = el.photo.getContext("2d", { willReadFrequently: true });
  photoCtx.drawImage(bitmap, 0, 0);
  state.transparent = findTransparency(photoCtx.getImageData(0, 0, width, height).data);
  state.undo = [];
  maskCtx.clearRect(0, 0, width, height);
  el.stage.classList.remove("empty");
  el.fileName.textContent = `${file.name}, ${width}x${height}`;
  el.alpha.disabled = state.transparent === null;
  el.result.hidden = true;
  clearStatus();
  if (state.transparent !== null) {
    applyTransparency();
    showStatus("ok", "The image's transparent pixels are marked as the hole.", "Paint more, or Undo to start from none.");
  }
  updateMaskInfo();
  updateRing();
  locateFaces();
}

function findTransparency(rgba) {
  const hole = new Uint8Array(rgba.length / 4);
  let any = false;
  for (let i = 0; i < hole.length; i++) {
    if (rgba[i * 4 + 3] < 255) {
      hole[i] = 1;
      any = true;
    }
  }
  return any ? hole : null;
}

el.file.addEventListener("change", () => openFile(el.file.files[0]));
for (const type of ["dragenter", "dragover"]) {
  document.addEventListener(type, (event) => {
    event.preventDefault();
    el.drop.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) {
  document.addEventListener(type, (event) => {
    event.preventDefault();
    if (type === "drop" || event.relatedTarget === null) el.drop.classList.remove("over");
  });
}
document.addEventListener("drop", (event) => openFile(event.dataTransfer.files[0]));

// ---------- painting the mask ----------

function brushPixels() {
  // the slider is in screen pixels: the same stroke feels the same on any photo size
  const rect = el.mask.getBoundingClientRect();
  return Number(el.size.value) * (el.mask.width / Math.max(rect.width, 1));
}

function toImage(event) {
  const rect = el.mask.getBoundingClientRect();
  return [
    (event.clientX - rect.left) * (el.mask.width / rect.width),
    (event.clientY - rect.top) * (el.mask.height / rect.height),
  ];
}

function tool() {
  return document.querySelector('input[name="tool"]:checked').value;
}

function pushUndo() {
  state.undo.push(maskCtx.getImageData(0, 0, el.mask.width, el.mask.height));
  const keep = Math.max(3, Math.min(MAX_UNDO, Math.floor(UNDO_PIXELS / (el.mask.width * el.mask.height))));
  while (state.undo.length > keep) state.undo.shift();
}

function stroke(from, to) {
  maskCtx.save();
  maskCtx.globalCompositeOperation = tool() === "eraser" ? "destination-out" : "source-over";
  maskCtx.strokeStyle = maskCtx.fillStyle = MASK_COLOR;
  maskCtx.lineWidth = brushPixels();
  maskCtx.lineCap = maskCtx.lineJoin = "round";
  maskCtx.beginPath();
  if (from[0] === to[0] && from[1] === to[1]) {
    // a tap or click: a filled disc, since some Chromium builds prune a zero-length line and paint nothing
    maskCtx.arc(to[0], to[1], brushPixels() / 2, 0, 2 * Math.PI);
    maskCtx.fill();
  } else {
    maskCtx.moveTo(from[0], from[1]);
    maskCtx.lineTo(to[0], to[1]);
    maskCtx.stroke();
  }
  maskCtx.restore();
}

el.mask.addEventListener("pointerdown", (event) => {
  if (!state.file || state.painting || event.button > 0 || tool() === "faces") return;
  event.preventDefault();
  el.mask.setPointerCapture(event.pointerId);
  pushUndo();
  const at = toImage(event);
  state.painting = { id: event.pointerId, last: at };
  stroke(at, at);
});

el.mask.addEventListener("pointermove", (event) => {
  moveRing(event);
  if (!state.painting || event.pointerId !== state.painting.id) return;
  const points = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const point of points.length ? points : [event]) {
    const at = toImage(point);
    stroke(state.painting.last, at);
    state.painting.last = at;
  }
});

function endStroke(event) {
  if (!state.painting || event.pointerId !== state.painting.id) return;
  state.painting = null;
  updateMaskInfo();
}
el.mask.addEventListener("pointerup", endStroke);
el.mask.addEventListener("pointercancel", endStroke);
el.mask.addEventListener("pointerleave", () => { el.ring.hidden = true; });

function moveRing(event) {
  if (event.pointerType !== "mouse") return;
  const rect = el.stage.getBoundingClientRect();
  el.ring.hidden = false;
  el.ring.style.left = `${event.clientX - rect.left}px`;
  el.ring.style.top = `${event.clientY - rect.top}px`;
}

function updateRing() {
  const size = Number(el.size.value);
  el.sizeValue.textContent = `${size} px`;
  el.ring.style.width = el.ring.style.height = `${size}px`;
}
el.size.addEventListener("input", updateRing);

el.undo.addEventListener("click", () => {
  const previous = state.undo.pop();
  if (previous) maskCtx.putImageData(previous, 0, 0);
  updateMaskInfo();
});

el.clear.addEventListener("click", () => {
  pushUndo();
  maskCtx.clearRect(0, 0, el.mask.width, el.mask.height);
  updateMaskInfo();
});

function applyTransparency() {
  const { width, height } = el.mask;
  const painted = maskCtx.getImageData(0, 0, width, height);
  const color = maskColor();
  for (let i = 0; i < state.transparent.length; i++) {
    if (state.transparent[i]) painted.data.set(color, i * 4);
  }
  maskCtx.putImageData(painted, 0, 0);
}

function maskColor() {
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = MASK_COLOR;
  probe.fillRect(0, 0, 1, 1);
  return probe.getImageData(0, 0, 1, 1).data;
}

el.alpha.addEventListener("click", () => {
  pushUndo();
  applyTransparency();
  updateMaskInfo();
});

// the hole as the API wants it: white = fill, black = keep; a half-covered edge pixel counts from half
function holeCount(data) {
  let count = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) count++;
  return count;
}

function updateMaskInfo() {
  const { width, height } = el.mask;
  const count = state.file ? holeCount(maskCtx.getImageData(0, 0, width, height).data) : 0;
  const share = count / (width * height);
  el.maskInfo.textContent = count
    ? `Painted area: ${count.toLocaleString("en")} pixels (${(share * 100).toFixed(1)} % of the photo)`
    : "Painted area: none";
  el.undo.disabled = state.undo.length === 0;
  el.clear.disabled = count === 0;
  el.submit.disabled = count === 0 || state.job !== null || el.model.disabled;
}

function maskBlob() {
  const { width, height } = el.mask;
  const painted = maskCtx.getImageData(0, 0, width, height);
  const out = new ImageData(width, height);
  for (let i = 0; i < painted.data.length; i += 4) {
    const value = painted.data[i + 3] >= 128 ? 255 : 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = value;
    out.data[i + 3] = 255;
  }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input[type=number], input[type=password], select, dialog");
  if (typing || event.altKey) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    el.undo.click();
  } else if (event.ctrlKey || event.metaKey) {
    return;
  } else if (event.key === "b" || event.key === "e" || event.key === "f") {
    const chosen = { b: "brush", e: "eraser", f: "faces" }[event.key];
    document.querySelector(`input[name="tool"][value="${chosen}"]`).checked = true;
    showTool();
  } else if (event.key === "[" || event.key === "]") {
    el.size.value = Number(el.size.value) + (event.key === "]" ? 4 : -4);
    updateRing();
  }
});

// ---------- face boxes ----------
// After a photo opens, POST /v1/faces finds its faces; each box is drawn over the photo. With the
// Faces tool a drag on the photo adds a box, a drag on a box moves it, and its × deletes it. Once
// edited, Restore sends the boxes as faces=x,y,w,h;... (photo pixels); unedited, it sends none and
// the server finds the faces itself, with the mask in view.

const MIN_BOX_SCREEN_PX = 8; // a shorter drag is a slip, not a box
const FACE_STATUS = {
  restored: "restored",
  "too-small": "too small to restore",
  "not-a-face": "not a face",
  untouched: "untouched (no damage)",
  "over-the-cap": "over the server's cap",
  "no-context": "too damaged to frame",
  "fills-the-photo": "fills the photo (restored whole)",
};

function showFacesInfo(text) {
  el.facesInfo.textContent = text;
}

async function locateFaces() {
  const lookup = ++state.facesLookup;
  const file = state.file;
  state.faces = [];
  state.facesEdited = false;
  drawFaces();
  showFacesInfo("Looking for faces…");
  const data = new FormData();
  data.append("image", file, file.name || "image.png");
  let response;
  try {
    response = await fetch("/v1/faces", { method: "POST", body: data, headers: authHeaders() });
  } catch {
    if (lookup === state.facesLookup) showFacesInfo("Could not look for faces. Add boxes with the Faces tool.");
    return;
  }
  if (lookup !== state.facesLookup) return;
  state.facesNeedToken = response.status === 401;
  if (!response.ok) {
    const problem = await readProblem(response);
    if (lookup !== state.facesLookup) return;
    showFacesInfo(state.facesNeedToken
      ? "Faces are looked for once the API token is given (Restore asks for it)."
      : `No face boxes: ${problem.detail}`);
    return;
  }
  const answer = await response.json();
  if (lookup !== state.facesLookup) return;
  state.faceModels = answer.face_models;
  const found = answer.faces.map((face) => ({ box: face.box, source: "detected" }));
  state.faces = [...state.faces, ...found]; // boxes the user drew while this ran stay (and keep their places)
  drawFaces();
  describeFaces();
}

function facesUsed() {
  const model = selectedModel();
  return Boolean(model && state.faceModels?.includes(model.name));
}

// what Restore sends: null = nothing (the server locates), "" = no box at all, else "x,y,w,h;..."
function facesField() {
  if (!state.facesEdited || !facesUsed()) return null;
  return state.faces.map((face) => face.box.map((v) => Math.round(v)).join(",")).join(";");
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "es"}`;
}

function describeFaces() {
  if (!state.file || state.facesLookup === 0) return;
  const count = state.faces.length;
  let text = count ? `${plural(count, "face box")}.` : "No face found.";
  if (state.faceModels !== null && !facesUsed()) {
    text += " The selected model restores whole photos: boxes are used only with a face model.";
  } else if (state.facesEdited) {
    text += count ? " Edited: Restore restores the faces in these boxes." : " All deleted: Restore treats no part as a face.";
  } else {
    text += " Choose the Faces tool to add, move or delete one; as they are, the server finds the faces itself.";
  }
  const done = state.faces.filter((face) => face.status);
  if (done.length) text += ` Last restore: ${facesSummary(done)}.`;
  showFacesInfo(text);
}

function facesSummary(faces, fallback) {
  if (!faces.length) return fallback === "whole" ? "none found: the whole photo" : "none";
  const counts = new Map();
  for (const face of faces) counts.set(face.status, (counts.get(face.status) || 0) + 1);
  const parts = [...counts].map(([status, count]) => `${count} ${FACE_STATUS[status] || status}`);
  const models = [...new Set(faces.map((face) => face.model).filter(Boolean))];
  return parts.join(", ") + (models.length ? ` (${models.join(", ")})` : "");
}

function placeBox(node, box) {
  const { width, height } = el.photo;
  node.style.left = `${(box[0] / width) * 100}%`;
  node.style.top = `${(box[1] / height) * 100}%`;
  node.style.width = `${(box[2] / width) * 100}%`;
  node.style.height = `${(box[3] / height) * 100}%`;
}

function drawFaces() {
  el.faces.replaceChildren();
  el.faces.classList.toggle("inactive", state.faceModels !== null && !facesUsed());
  state.faces.forEach((face, index) => {
    const node = document.createElement("div");
    node.className = "face-box";
    node.dataset.index = String(index);
    node.dataset.source = face.source;
    if (face.status) node.dataset.status = face.status;
    node.tabIndex = 0;
    const [x, y, w, h] = face.box;
    const status = face.status ? `, ${FACE_STATUS[face.status] || face.status}` : "";
    node.setAttribute("aria-label", `Face box ${index + 1} at ${x}, ${y}, ${w}x${h} pixels${status}`);
    placeBox(node, face.box);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "face-delete";
    remove.textContent = "×";
    remove.title = "Delete this box";
    remove.setAttribute("aria-label", `Delete face box ${index + 1}`);
    remove.addEventListener("pointerdown", (event) => event.stopPropagation());
    remove.addEventListener("click", () => deleteFace(index));
    node.append(remove);
    if (face.status) {
      // kept on the photo: above a box near its bottom, right-aligned on a box near its right
      node.classList.toggle("caption-above", (y + h) / el.photo.height > 0.9);
      node.classList.toggle("caption-right", x / el.photo.width > 0.6);
      const caption = document.createElement("span");
      caption.className = "face-caption";
      caption.textContent = FACE_STATUS[face.status] || face.status;
      node.append(caption);
    }
    el.faces.append(node);
  });
}

function edited() {
  state.facesEdited = true;
  drawFaces();
  describeFaces();
}

function deleteFace(index) {
  state.faces.splice(index, 1);
  edited();
  (el.faces.querySelector(`.face-box[data-index="${Math.min(index, state.faces.length - 1)}"]`) || el.mask).focus();
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

// a box moved by (dx, dy) photo pixels, whole and inside the photo
function movedBox(box, dx, dy) {
  const { width, height } = el.photo;
  return [
    clamp(Math.round(box[0] + dx), 0, Math.max(0, width - box[2])),
    clamp(Math.round(box[1] + dy), 0, Math.max(0, height - box[3])),
    box[2],
    box[3],
  ];
}

// the box spanned by two photo points, whole and inside the photo
function spannedBox(a, b) {
  const { width, height } = el.photo;
  const left = Math.round(clamp(Math.min(a[0], b[0]), 0, width));
  const top = Math.round(clamp(Math.min(a[1], b[1]), 0, height));
  const right = Math.round(clamp(Math.max(a[0], b[0]), 0, width));
  const bottom = Math.round(clamp(Math.max(a[1], b[1]), 0, height));
  return [left, top, right - left, bottom - top];
}

function showTool() {
  const faces = tool() === "faces";
  el.stage.classList.toggle("tool-faces", faces);
  if (faces) el.ring.hidden = true;
}
for (const radio of document.querySelectorAll('input[name="tool"]')) radio.addEventListener("change", showTool);

el.faces.addEventListener("pointerdown", (event) => {
  if (tool() !== "faces" || !state.file || state.faceDrag || event.button > 0) return;
  event.preventDefault();
  el.faces.setPointerCapture(event.pointerId);
  const at = toImage(event);
  const target = event.target.closest(".face-box");
  if (target) {
    const index = Number(target.dataset.index);
    state.faceDrag = { id: event.pointerId, mode: "move", start: at, index, node: target, box: state.faces[index].box };
  } else {
    const node = document.createElement("div");
    node.className = "face-box preview";
    el.faces.append(node);
    state.faceDrag = { id: event.pointerId, mode: "add", start: at, node, box: spannedBox(at, at) };
    placeBox(node, state.faceDrag.box);
  }
});

el.faces.addEventListener("pointermove", (event) => {
  const drag = state.faceDrag;
  if (!drag || event.pointerId !== drag.id) return;
  const at = toImage(event);
  drag.box = drag.mode === "move"
    ? movedBox(state.faces[drag.index].box, at[0] - drag.start[0], at[1] - drag.start[1])
    : spannedBox(drag.start, at);
  placeBox(drag.node, drag.box);
});

function endFaceDrag(event) {
  const drag = state.faceDrag;
  if (!drag || event.pointerId !== drag.id) return;
  state.faceDrag = null;
  if (event.type === "pointercancel") {
    drawFaces();
    return;
  }
  if (drag.mode === "move") {
    const face = state.faces[drag.index];
    if (drag.box.some((value, i) => value !== face.box[i])) {
      state.faces[drag.index] = { box: drag.box, source: "given" };
      edited();
    }
    return;
  }
  drag.node.remove();
  const rect = el.mask.getBoundingClientRect();
  const screen = Math.min(drag.box[2], drag.box[3]) * (rect.width / el.photo.width);
  if (screen >= MIN_BOX_SCREEN_PX) {
    state.faces.push({ box: drag.box, source: "given" });
    edited();
  }
}
el.faces.addEventListener("pointerup", endFaceDrag);
el.faces.addEventListener("pointercancel", endFaceDrag);

// a focused box: Delete removes it, the arrows move it (Shift: ten times as far)
el.faces.addEventListener("keydown", (event) => {
  const target = event.target.closest(".face-box");
  if (!target || event.target !== target) return;
  const index = Number(target.dataset.index);
  const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
  if (event.key === "Delete" || event.key === "Backspace") {
    event.preventDefault();
    deleteFace(index);
  } else if (steps) {
    event.preventDefault();
    const step = (event.shiftKey ? 10 : 1) * Math.max(1, Math.round(el.photo.width / el.mask.getBoundingClientRect().width));
    state.faces[index] = { box: movedBox(state.faces[index].box, steps[0] * step, steps[1] * step), source: "given" };
    edited();
    el.faces.querySelector(`.face-box[data-index="${index}"]`).focus();
  }
});

// the boxes the server used and what it did with each, when the answer is for the photo still open
function showAnswerFaces(answer, job) {
  if (job.file !== state.file) return;
  if (answer.region === "auto") {
    if (job.modelName && !state.faceModels?.includes(job.modelName)) {
      state.faceModels = [...(state.faceModels || []), job.modelName];
    }
    state.faces = answer.faces.map((face) => ({
      box: face.box, source: face.source, status: face.status, model: face.model,
    }));
    drawFaces();
    describeFaces();
  } else if (state.facesNeedToken) {
    locateFaces(); // the token has been given since the photo opened
  }
}

// ---------- models and presets ----------

async function loadModels() {
  try {
    const response = await fetch("/v1/models", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`GET /v1/models answered ${response.status}`);
    const listing = await response.json();
    state.models = listing.models;
    el.model.replaceChildren();
    // the latest of each name first, as the API resolves a bare name to it
    const ordered = [...listing.models].sort((a, b) => Number(b.latest) - Number(a.latest));
    for (const model of ordered) {
      const option = document.createElement("option");
      option.value = model.latest ? model.name : model.key;
      option.textContent = model.latest ? `${model.name} (${model.key})` : model.key;
      option.dataset.key = model.key;
      option.selected = model.key === listing.default;
      el.model.append(option);
    }
    el.model.disabled = false;
    showModel();
  } catch (error) {
    showStatus("error", "Could not list the models.", `${error.message}: is the server running?`);
  }
}

function selectedModel() {
  const key = el.model.selectedOptions[0]?.dataset.key;
  return state.models.find((model) => model.key === key);
}

function showModel() {
  const model = selectedModel();
  if (!model) return;
  if (model.samples_url) {
    el.samples.src = new URL(model.samples_url).pathname;
    el.samples.alt = `images the ${model.key} model generates`;
    el.modelCaption.textContent = `${model.key} knows ${model.dataset}: photos like these restore best. `
      + `${model.resolution}x${model.resolution}, `
      + `${!hasBudget(model) ? `kind ${model.kind}, nothing to tune` : model.encoder ? "with an encoder" : "no encoder"}.`;
    el.modelHint.hidden = false;
  } else {
    el.modelHint.hidden = true;
  }
  showPreset();
  updateMaskInfo();
  describeFaces();
}

function preset() {
  return document.querySelector('input[name="preset"]:checked').value;
}

// a model whose kind takes no budget (a one-pass model, kind glcic) has nothing to choose here
function hasBudget(model) {
  return Boolean(model?.parameters.includes("iterations"));
}

function showPreset() {
  const model = selectedModel();
  const chosen = preset();
  el.presets.hidden = model ? !hasBudget(model) : false;
  el.custom.hidden = chosen !== "custom" || (model ? !hasBudget(model) : false);
  if (!model) return;
  if (!hasBudget(model)) {
    el.presetInfo.textContent = `A ${model.kind} model: it takes no iterations or restarts, nothing to tune`;
    return;
  }
  el.presetInfo.textContent = chosen === "custom"
    ? "Your own budget: iterations per restart (0 with an encoder = its one-pass guess) and restarts"
    : PRESETS[model.encoder ? "encoder" : "random"][chosen].text;
}

function presetFields() {
  const model = selectedModel();
  if (!hasBudget(model)) return {};
  if (preset() === "custom") return { iterations: el.iterations.value, restarts: el.restarts.value };
  return PRESETS[model.encoder ? "encoder" : "random"][preset()].fields;
}

el.model.addEventListener("change", showModel);
for (const radio of document.querySelectorAll('input[name="preset"]')) radio.addEventListener("change", showPreset);

// ---------- sending ----------

function tick() {
  const seconds = (performance.now() - state.job.started) / 1000;
  if (state.job.retryAt) {
    const left = Math.max(0, Math.ceil((state.job.retryAt - performance.now()) / 1000));
    showStatus("retry", `Server busy: retrying in ${left} s (attempt ${state.job.attempt + 1}).`, state.job.detail);
  } else {
    showStatus("busy", `Restoring… ${seconds.toFixed(1)} s`, state.job.attempt ? `attempt ${state.job.attempt + 1}` : "");
  }
}

async function submit() {
  if (state.job || !state.file) return;
  const mask = await maskBlob();
  state.job = {
    controller: new AbortController(), started: performance.now(), attempt: 0, retryAt: 0, detail: "",
    bitmap: state.bitmap, name: state.file.name, // what was sent, even if another photo is opened meanwhile
    file: state.file, modelName: selectedModel()?.name,
    body: form(mask), // sent again as it is on each retry
  };
  state.job.timer = setInterval(tick, 100);
  el.status.setAttribute("aria-busy", "true"); // a screen reader reads the outcome, not every tick
  el.cancel.hidden = false;
  updateMaskInfo();
  tick();
  try {
    await send();
  } finally {
    clearInterval(state.job.timer);
    el.status.setAttribute("aria-busy", "false");
    state.job = null;
    el.cancel.hidden = true;
    updateMaskInfo();
  }
}

function form(mask) {
  const data = new FormData();
  data.append("image", state.file, state.file.name || "image.png");
  data.append("mask", mask, "mask.png");
  data.append("model", el.model.value);
  data.append("format", "png");
  for (const [name, value] of Object.entries(presetFields())) data.append(name, String(value));
  const faces = facesField();
  // every box deleted: no face to restore, which is the whole-photo answer
  if (faces === "") data.append("region", "whole");
  else if (faces !== null) data.append("faces", faces);
  return data;
}

async function send() {
  const job = state.job;
  for (;;) {
    const headers = authHeaders();
    let response;
    try {
      response = await fetch("/complete", { method: "POST", body: job.body, headers, signal: job.controller.signal });
    } catch (error) {
      if (error.name === "AbortError") showStatus("error", "Cancelled.", "The server frees the search's slots.");
      else showStatus("error", "Could not reach the server.", "Check that it is running, then press Restore again.");
      return;
    }
    if (response.ok) {
      await showResult(await response.json(), job);
      return;
    }
    const problem = await readProblem(response);
    if (response.status === 503 && job.attempt < MAX_RETRIES) {
      const wait = retryAfterSeconds(response);
      job.attempt += 1;
      job.detail = problem.detail;
      job.retryAt = performance.now() + wait * 1000;
      tick();
      if (!(await sleep(wait * 1000, job.controller.signal))) {
        showStatus("error", "Cancelled.", "");
        return;
      }
      job.retryAt = 0;
      continue;
    }
    if (response.status === 401) {
      const entered = await askToken(problem.detail);
      if (entered) continue;
      showStatus("error", problem.title, problem.detail);
      return;
    }
    showStatus("error", `${problem.title} (${response.status})`, problem.detail);
    return;
  }
}

function authHeaders() {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function readProblem(response) {
  const fallback = { title: response.statusText || "Request failed", detail: `the server answered ${response.status}` };
  try {
    const body = await response.json();
    const requestId = body.request_id ? ` (request ${body.request_id})` : "";
    return { title: body.title || fallback.title, detail: (body.detail || fallback.detail) + requestId };
  } catch {
    return fallback;
  }
}

function retryAfterSeconds(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 300) : 2;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(true), ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(false); }, { once: true });
  });
}

el.submit.addEventListener("click", submit);
el.cancel.addEventListener("click", () => state.job?.controller.abort());

// ---------- the API token ----------

function askToken(detail) {
  el.tokenDetail.textContent = detail;
  el.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  el.tokenDialog.showModal();
  return new Promise((resolve) => {
    const done = (value) => {
      el.tokenForm.removeEventListener("submit", onSubmit);
      el.tokenCancel.removeEventListener("click", onCancel);
      el.tokenDialog.removeEventListener("cancel", onCancel);
      el.tokenDialog.close();
      resolve(value);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, el.token.value.trim());
      done(true);
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(false);
    };
    el.tokenForm.addEventListener("submit", onSubmit);
    el.tokenCancel.addEventListener("click", onCancel);
    el.tokenDialog.addEventListener("cancel", onCancel);
  });
}

// ---------- the answer ----------

async function showResult(answer, job) {
  const elapsedMs = performance.now() - job.started;
  const bytes = Uint8Array.from(atob(answer.image), (c) => c.charCodeAt(0));
  const blob = new Blob([bytes], { type: `image/${answer.format}` });
  const restored = await createImageBitmap(blob);
  for (const [canvas, picture] of [[el.before, job.bitmap], [el.after, restored]]) {
    canvas.width = picture.width;
    canvas.height = picture.height;
    canvas.getContext("2d", { willReadFrequently: true }).drawImage(picture, 0, 0);
  }
  if (state.downloadUrl) URL.revokeObjectURL(state.downloadUrl);
  state.downloadUrl = URL.createObjectURL(blob);
  el.download.href = state.downloadUrl;
  el.download.download = `${(job.name || "image").replace(/\.[^.]+$/, "")}-restored.${answer.format}`;
  const t = answer.timings;
  const rows = [
    ["model", `${answer.model}, ${answer.init === "none" ? "one pass" : `start: ${answer.init}`}`],
    // loss is null for a model that optimises none per request (a one-pass model)
    ["iterations", answer.loss === null ? `${answer.iterations}` : `${answer.iterations} (loss ${answer.loss.toFixed(4)})`],
    ["search", seconds(t.search_s)],
    ["queue", seconds(t.queue_s)],
    ["decode + encode", seconds(t.decode_s + t.encode_s)],
    ["server total", seconds(t.total_s)],
    ["round trip", seconds(elapsedMs / 1000)],
  ];
  if (answer.region === "auto") rows.splice(1, 0, ["faces", facesSummary(answer.faces, answer.fallback)]);
  showAnswerFaces(answer, job);
  el.timings.replaceChildren();
  for (const [name, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = name;
    const text = document.createElement("dd");
    text.textContent = value;
    el.timings.append(term, text);
  }
  el.result.hidden = false;
  setSplit(Number(el.split.value));
  el.result.scrollIntoView({ block: "nearest" });
  showStatus("ok", `Restored in ${seconds(elapsedMs / 1000)}.`, "Drag across the picture or use the slider to compare.");
}

function seconds(value) {
  return value < 1 ? `${(value * 1000).toFixed(0)} ms` : `${value.toFixed(2)} s`;
}

function setSplit(percent) {
  el.after.style.clipPath = `inset(0 0 0 ${percent}%)`;
  el.divider.style.left = `${percent}%`;
}
el.split.addEventListener("input", () => setSplit(Number(el.split.value)));

function dragSplit(event) {
  const rect = el.compare.getBoundingClientRect();
  const percent = Math.round(Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width)) * 100);
  el.split.value = percent;
  setSplit(percent);
}
el.compare.addEventListener("pointerdown", (event) => {
  el.compare.setPointerCapture(event.pointerId);
  dragSplit(event);
});
el.compare.addEventListener("pointermove", (event) => {
  if (el.compare.hasPointerCapture(event.pointerId)) dragSplit(event);
});

loadModels();
updateRing();
showTool();
