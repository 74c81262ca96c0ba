"""The steppable core: a table of live search slots that take one step together.

One search (a `SearchJob`) occupies one slot per restart. Every `step()` runs a
single forward/backward over all live slots, however many searches they
belong to; a restart that reaches its budget or plateaus leaves the table
(its rows are dropped, so it costs nothing more), and a search is finished
when its last restart has left. `add` and `pop` may be called between any two
steps, which is what an iteration-level pool needs.

The host does not wait for the device every step. A row's budget is counted on
the host (every row takes one iteration per step); its plateau is found on the
device, where the row is frozen at once (its best image, loss and iteration count
stop changing), and the host reads which rows plateaued every `plateau_every`
steps, so reading later gives the same answer. Jobs added between steps are
admitted together at the next step: one host-to-device copy (from pinned memory
on CUDA) and one encoder pass for all of them. The table is padded with inert
rows to the next of `StepOptions.sizes`, so the networks see a few fixed batch
sizes.

Batch invariance: every quantity that shapes a slot's trajectory is per row
(seeded initial z, Adam moments and step count, lr, lambda, bound, budget,
plateau counter) and every loss is reduced per row, so a slot follows the same
path whatever else shares the table, padding included, up to the floating-point
differences of batched convolutions.

What a step costs follows what its rows need: the discriminator runs only over
rows whose prior weight is not zero, and a table of one-pass rows (budget 0:
the encoder's guess is the answer) runs G forward without a backward.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, fields, replace

import torch

from app.engine.adam import adam_step
from app.engine.errors import EngineError, ParamsError
from app.engine.losses import contextual_loss, importance_weights, prior_loss
from app.engine.precision import autocast_dtype
from app.engine.search import SearchJob, SearchResult, initial_z
from app.engine.stepping import StepOptions
from app.engine.transfer import to_device
from training.networks import Discriminator, Encoder, Generator

# per-row numbers of an admitted job, packed after its pixels and its start's noise
_SCALARS = ("lr", "prior_weight", "z_bound", "patience", "tolerance")


@dataclass
class _Slots:
    """Per-slot state, one row per live restart and per padding row; every tensor field has S rows."""

    z: torch.Tensor  # (S, z_dim)
    target: torch.Tensor  # (S, C, R, R)
    weights: torch.Tensor  # (S, 1, R, R)
    lr: torch.Tensor  # (S,)
    prior_weight: torch.Tensor  # (S,)
    z_bound: torch.Tensor  # (S,)
    patience: torch.Tensor  # (S,) int64
    tolerance: torch.Tensor  # (S,)
    best_loss: torch.Tensor  # (S,) lowest loss seen: its image is the answer
    best_image: torch.Tensor  # (S, C, R, R)
    plateau_loss: torch.Tensor  # (S,) loss at the last improvement larger than `tolerance`
    stalled: torch.Tensor  # (S,) int64 iterations since then
    m: torch.Tensor  # (S, z_dim) Adam first moment
    v: torch.Tensor  # (S, z_dim) Adam second moment
    steps: torch.Tensor  # (S,) int64 Adam's iterations
    ran: torch.Tensor  # (S,) int64 iterations that count for the answer (they stop at a plateau)
    active: torch.Tensor  # (S,) bool: still searching (false for padding and for rows that plateaued)

    def __len__(self) -> int:
        return self.z.shape[0]

    def select(self, rows: torch.Tensor) -> _Slots:
        return _Slots(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def head(self, count: int) -> _Slots:
        return _Slots(**{f.name: getattr(self, f.name)[:count] for f in fields(self)})

    @staticmethod
    def cat(parts: list[_Slots]) -> _Slots:
        return _Slots(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(_Slots)})


@dataclass
class _Search:
    """Book-keeping for one admitted job across its restarts."""

    job: SearchJob
    admitted: float
    budget: int  # iterations per restart
    live: int  # restarts still in the table
    loss: float = math.inf
    restart: int = -1
    generated: torch.Tensor | None = None
    iterations: int = 0
    seconds: float = 0.0

    def offer(self, restart: int, loss: float, image: torch.Tensor, iterations: int) -> None:
        """A restart finished: keep it if it beats the best so far (ties go to the lower restart)."""
        if self.generated is None or (loss, restart) < (self.loss, self.restart):
            # a copy, not a view: the answer must not pin (or alias) the storage of others' answers
            self.loss, self.restart, self.iterations = loss, restart, iterations
            self.generated = image.clone()


@dataclass
class _Pending:
    """A job added since the last step: its rows packed on the host, copied to the device with the others."""

    key: int
    job: SearchJob
    rows: torch.Tensor  # (restarts, width): target, weights, hole, _SCALARS, noise; float32


class SearchBatch:
    """A table of live searches on one device that advance one iteration per `step()`.

    Not thread-safe: one worker thread owns a batch and makes every call on it.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        device: torch.device,
        precision: str = "fp32",
        encoder: Encoder | None = None,
        options: StepOptions | None = None,
    ) -> None:
        self.generator = generator
        self.discriminator = discriminator
        self.encoder = encoder
        self.device = torch.device(device)
        self.dtype = autocast_dtype(precision, self.device)
        self.options = options or StepOptions()
        config = generator.config
        self.channels, self.resolution, self.z_dim = config.channels, config.resolution, config.z_dim
        self._slots: _Slots | None = None  # real rows first, then padding
        self._owner: list[int] = []  # search key of each real row
        self._restart: list[int] = []  # restart index of each real row
        self._prior: list[bool] = []  # whether each real row's loss has the discriminator's prior term
        self._searching: list[bool] = []  # whether each real row has a budget above 0 (needs gradients)
        self._left: list[int] = []  # steps each real row has left before its budget ends it
        self._prior_rows: torch.Tensor | None = None  # the discriminator's rows of a mixed table, on the device
        self._pending: list[_Pending] = []
        self._searches: dict[int, _Search] = {}
        self._finished: list[int] = []
        self._next_key = 0
        self._steps = 0

    @property
    def live_slots(self) -> int:
        """Rows that the next `step()` computes (padding aside)."""
        return len(self._owner) + sum(len(pending.rows) for pending in self._pending)

    def add(self, job: SearchJob) -> int:
        """Admit a job: one new slot per restart at the next step. Returns its key for `pop`/`cancel`.

        Everything here is host work on the job's own tensors; the device sees the job at the next step.
        """
        job.check(self.channels, self.resolution)
        params = job.params
        if params.init == "encoder" and self.encoder is None:
            raise ParamsError("init=encoder needs a model with an encoder: use init=random or a model version with one")
        key, self._next_key = self._next_key, self._next_key + 1
        hole = job.hole
        target = job.target.to(torch.float32).masked_fill(hole, 0.0)
        weights = importance_weights(hole, params.window)
        noise = torch.stack([initial_z(params.seed, r, self.z_dim) for r in range(params.restarts)])
        if params.init == "encoder":
            noise[0] = 0.0  # restart 0 is the guess itself
        scalars = torch.tensor([float(getattr(params, name)) for name in _SCALARS], dtype=torch.float32)
        pixels = torch.cat([target.flatten(), weights.flatten(), hole.flatten().float(), scalars])
        rows = torch.cat([pixels.expand(params.restarts, -1), noise], dim=1)
        self._pending.append(_Pending(key, job, rows))
        self._searches[key] = _Search(job=job, admitted=time.perf_counter(), budget=job.budget, live=params.restarts)
        return key

    def _admit(self) -> None:
        """The pending jobs into the table: one copy of all their rows, then the encoder's guesses (`_starts`)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        packed = to_device(torch.cat([p.rows for p in pending]), self.device)
        channels, side = self.channels, self.resolution
        area = side * side
        widths = [channels * area, area, area, len(_SCALARS), self.z_dim]
        target, weights, hole, scalars, noise = packed.split(widths, dim=1)
        target = target.reshape(-1, channels, side, side).contiguous()
        starts = [sum(len(p.rows) for p in pending[:index]) for index in range(len(pending))]
        z = self._starts(pending, starts, target, hole, noise.contiguous())
        lr, prior_weight, z_bound, patience, tolerance = (column.contiguous() for column in scalars.unbind(1))
        new = replace(
            self._blank(len(packed)),  # a fresh row's search state: no best yet, no stall, no Adam moments
            z=z,
            target=target,
            weights=weights.reshape(-1, 1, side, side).contiguous(),
            lr=lr,
            prior_weight=prior_weight,
            z_bound=z_bound,
            patience=patience.to(torch.int64),
            tolerance=tolerance,
            active=torch.ones(len(packed), dtype=torch.bool, device=self.device),
        )
        for p in pending:
            params, search = p.job.params, self._searches[p.key]
            self._owner += [p.key] * params.restarts
            self._restart += list(range(params.restarts))
            self._prior += [params.prior_weight > 0] * params.restarts
            self._searching += [search.budget > 0] * params.restarts
            self._left += [max(search.budget, 1)] * params.restarts  # a one-pass row still takes its one step
        kept = [] if self._slots is None else [self._slots.head(len(self._owner) - len(packed))]
        self._set_table([*kept, new])

    def _starts(
        self, pending: list[_Pending], starts: list[int], target: torch.Tensor, hole: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """(rows, z_dim) starts: seeded Gaussian draws, or E's guess (plus seeded noise after restart 0).

        `starts`: each job's first row; `hole`: (rows, R * R) in {0, 1}.

        The encoder guesses from the first row of every job that starts from it, under the search's precision:
        on CUDA in one pass for all of them; on the CPU one job at a time, since its batched convolutions and
        head give a guess other last bits (up to 3e-7 measured) than a lone job's, and fp32 answers then move.
        """
        guessed = [index for index, p in enumerate(pending) if p.job.params.init == "encoder"]
        if not guessed:
            return noise
        encoder = self.encoder
        assert encoder is not None  # `add` refused encoder starts without one
        hole = hole.reshape(-1, 1, self.resolution, self.resolution)
        first = [starts[index] for index in guessed]
        passes = [first] if self.device.type == "cuda" else [[row] for row in first]
        with torch.no_grad(), self._context():
            guesses = torch.cat([encoder(_rows(target, rows), _rows(hole, rows)).float() for rows in passes])
        parts = []
        for index, p in enumerate(pending):
            rows = noise[starts[index] : starts[index] + len(p.rows)]
            params = p.job.params
            if index in guessed:
                guess = guesses[guessed.index(index)][None]
                rows = (guess + params.init_noise * rows).clamp(-params.z_bound, params.z_bound)
            parts.append(rows)
        return torch.cat(parts)

    def _set_table(self, parts: list[_Slots]) -> None:
        """The real rows (in host-list order) plus padding up to the next fixed size become the table."""
        live = len(self._owner)
        self._prior_rows = None
        if live == 0:
            self._slots = None
            return
        padding = self.options.padded(live) - live
        if padding:
            parts = [*parts, self._blank(padding)]
        self._slots = parts[0] if len(parts) == 1 else _Slots.cat(parts)

    def _blank(self, count: int) -> _Slots:
        """Inert rows: zero z, weights, lr and prior weight, never active, so they change no real row (padding)."""

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(count, *shape, dtype=dtype, device=self.device)

        side = self.resolution
        return _Slots(
            z=zeros(self.z_dim),
            target=zeros(self.channels, side, side),
            weights=zeros(1, side, side),
            lr=zeros(),
            prior_weight=zeros(),
            z_bound=zeros(),
            patience=torch.ones(count, dtype=torch.int64, device=self.device),
            tolerance=zeros(),
            best_loss=torch.full((count,), math.inf, device=self.device),
            best_image=zeros(self.channels, side, side),
            plateau_loss=torch.full((count,), math.inf, device=self.device),
            stalled=zeros(dtype=torch.int64),
            m=zeros(self.z_dim),
            v=zeros(self.z_dim),
            steps=zeros(dtype=torch.int64),
            ran=zeros(dtype=torch.int64),
            active=zeros(dtype=torch.bool),
        )

    def _context(self) -> contextlib.AbstractContextManager[object]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _discriminated(self) -> torch.Tensor:
        """A mixed table's rows with a prior term, topped up with rows without one (which add 0) to a fixed size."""
        if self._prior_rows is None:
            prior = [row for row, has in enumerate(self._prior) if has]
            total = len(self._slots) if self._slots is not None else 0
            others = [row for row in range(total) if row >= len(self._prior) or not self._prior[row]]
            rows = prior + others[: self.options.padded(len(prior)) - len(prior)]
            self._prior_rows = to_device(torch.tensor(rows, dtype=torch.int64), self.device)
        return self._prior_rows

    def _loss(self, slots: _Slots, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row loss and G(z); D runs over the rows with a prior term only (all of them: the original path)."""
        every = all(self._prior)
        with self._context():
            image = self.generator(z)
            if every:
                logits = self.discriminator(image)
        if every:
            image, logits = image.float(), logits.float()
            return contextual_loss(image, slots.target, slots.weights) + slots.prior_weight * prior_loss(logits), image
        image = image.float()
        loss = contextual_loss(image, slots.target, slots.weights)
        if any(self._prior):
            rows = self._discriminated()
            with self._context():
                logits = self.discriminator(image[rows]).float()
            loss = loss.index_add(0, rows, slots.prior_weight[rows] * prior_loss(logits))
        return loss, image

    def step(self) -> list[int]:
        """One iteration for every live slot; returns the keys of searches that finished in it."""
        self._admit()
        slots = self._slots
        if slots is None:
            return []
        self._steps += 1
        if not any(self._searching):  # one-pass rows only: their answer is G(z) at the start
            with torch.no_grad():
                loss, image = self._loss(slots, slots.z)
                self._record(slots, loss, image)
            return self._retire(slots)
        z = slots.z.detach().requires_grad_(True)
        loss, image = self._loss(slots, z)
        (grad,) = torch.autograd.grad(loss.sum(), z)  # a sum of per-row losses: row i's grad is d loss_i / d z_i
        with torch.no_grad():
            self._record(slots, loss.detach(), image.detach())
            stepped = adam_step(slots.z, grad, slots.m, slots.v, slots.steps, slots.lr)
            # project onto the prior's support after each step (Yeh et al. clip z likewise)
            bound = slots.z_bound.unsqueeze(1)
            slots.z = torch.maximum(torch.minimum(stepped, bound), -bound)
        return self._retire(slots)

    def _record(self, slots: _Slots, loss: torch.Tensor, image: torch.Tensor) -> None:
        """Keep each active row's best image; count iterations without a `tolerance`-sized improvement, and
        freeze the rows that reach their patience."""
        better = (loss < slots.best_loss) & slots.active
        slots.best_loss = torch.where(better, loss, slots.best_loss)
        slots.best_image = torch.where(better[:, None, None, None], image, slots.best_image)
        improved = loss < slots.plateau_loss * (1 - slots.tolerance)
        slots.plateau_loss = torch.where(improved, loss, slots.plateau_loss)
        slots.stalled = torch.where(improved, torch.zeros_like(slots.stalled), slots.stalled + 1)
        slots.ran += slots.active
        slots.active &= slots.stalled < slots.patience

    def _retire(self, slots: _Slots) -> list[int]:
        """Drop rows at their budget (known on the host) or frozen on a plateau (read every `plateau_every`
        steps); finish searches with no live row left."""
        self._left = [left - 1 for left in self._left]
        ended = [row for row, left in enumerate(self._left) if left <= 0]
        if not ended and self._steps % self.options.plateau_every:
            return []
        live = len(self._owner)
        # one wait: which rows plateaued, with every row's best loss and iteration count
        summary = torch.stack([slots.active[:live].float(), slots.best_loss[:live], slots.ran[:live].float()])
        active, best, ran = summary.tolist()
        done = [row for row in range(live) if self._left[row] <= 0 or not active[row]]
        if not done:
            return []
        images = torch.stack([slots.best_image[row] for row in done]).cpu()  # one wait for every answer
        now = time.perf_counter()
        finished: list[int] = []
        for image, row in zip(images, done, strict=True):
            search = self._searches[self._owner[row]]
            # a one-pass row ran one step and 0 iterations
            search.offer(self._restart[row], best[row], image, min(int(ran[row]), search.budget))
            search.live -= 1
            if search.live == 0:
                search.seconds = now - search.admitted
                finished.append(self._owner[row])
        leaving = set(done)
        self._keep([row for row in range(live) if row not in leaving])
        self._finished += finished
        return finished

    def _keep(self, rows: list[int]) -> None:
        """Only these real rows stay: the host lists and the table follow them."""
        assert self._slots is not None
        kept = self._slots.select(to_device(torch.tensor(rows, dtype=torch.int64), self.device)) if rows else None
        self._owner = [self._owner[r] for r in rows]
        self._restart = [self._restart[r] for r in rows]
        self._prior = [self._prior[r] for r in rows]
        self._searching = [self._searching[r] for r in rows]
        self._left = [self._left[r] for r in rows]
        self._set_table([kept] if kept is not None else [])

    def pop(self, key: int) -> SearchResult:
        """Hand over a finished search's result and forget it."""
        if key not in self._finished:
            raise EngineError(f"search {key} is not finished (or was already popped)")
        self._finished.remove(key)
        search = self._searches.pop(key)
        assert search.generated is not None
        return SearchResult(
            generated=search.generated, loss=search.loss, iterations=search.iterations, seconds=search.seconds
        )

    def cancel(self, key: int) -> None:
        """Forget a search, live, pending or finished, and free its slots (client gone, deadline passed)."""
        if key not in self._searches:
            return
        del self._searches[key]
        if key in self._finished:
            self._finished.remove(key)
        self._pending = [p for p in self._pending if p.key != key]
        rows = [r for r, owner in enumerate(self._owner) if owner != key]
        if len(rows) != len(self._owner):
            self._keep(rows)

    def peek(self, key: int) -> SearchResult:
        """The answer a search would give if it stopped now: its best restart so far, live rows included.

        Lets an evaluation read the whole quality-against-iterations curve from one run: a restart's
        path does not depend on its budget, so its best image after k steps is a k-iteration answer.
        """
        search = self._searches[key]
        best = (search.loss, search.restart, search.generated, search.iterations)
        if self._slots is not None:
            for row, owner in enumerate(self._owner):
                loss = float(self._slots.best_loss[row])
                if owner == key and (best[2] is None or (loss, self._restart[row]) < best[:2]):
                    steps = min(int(self._slots.ran[row]), search.budget)
                    best = (loss, self._restart[row], self._slots.best_image[row], steps)
        loss, _, generated, iterations = best
        assert generated is not None, "a search has a best image once it has taken a step"
        elapsed = time.perf_counter() - search.admitted
        return SearchResult(
            generated=generated.detach().to("cpu", copy=True), loss=loss, iterations=iterations, seconds=elapsed
        )


def _rows(values: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """These rows of a device tensor, gathered by slicing (no index tensor to copy from the host)."""
    if rows == list(range(len(values))):
        return values
    if len(rows) == 1:
        return values[rows[0] : rows[0] + 1]
    return torch.cat([values[row : row + 1] for row in rows])
