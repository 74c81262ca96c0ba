"""The steppable core: a table of live search slots that take one step together.

One search (a `SearchJob`) occupies one slot per restart. Every `step()` runs a
single forward/backward over all live slots, however many searches they
belong to; a restart that reaches its budget or plateaus leaves the table at
once (its rows are dropped, so it costs nothing more), and a search is
finished when its last restart has left. `add` and `pop` may be called
between any two steps, which is what an iteration-level pool needs.

Batch invariance: every quantity that shapes a slot's trajectory is per row
(seeded initial z, Adam moments and step count, lr, lambda, bound, budget,
plateau counter; the encoder's guess is computed for one job at a time) and
every loss is reduced per row, so a slot follows the same path whatever else
shares the table, up to the floating-point differences of batched convolutions.

What a step costs follows what its rows need: the discriminator runs only over
rows whose prior weight is not zero, and a table of one-pass rows (budget 0:
the encoder's guess is the answer) runs G forward without a backward.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, fields

import torch

from app.engine.adam import adam_step
from app.engine.errors import EngineError, ParamsError
from app.engine.losses import contextual_loss, importance_weights, prior_loss
from app.engine.precision import autocast_dtype
from app.engine.search import SearchJob, SearchParams, SearchResult, initial_z
from training.networks import Discriminator, Encoder, Generator


@dataclass
class _Slots:
    """Per-slot state, one row per live restart; every tensor field has S rows."""

    z: torch.Tensor  # (S, z_dim)
    target: torch.Tensor  # (S, C, R, R)
    weights: torch.Tensor  # (S, 1, R, R)
    lr: torch.Tensor  # (S,)
    prior_weight: torch.Tensor  # (S,)
    z_bound: torch.Tensor  # (S,)
    budget: torch.Tensor  # (S,) int64
    patience: torch.Tensor  # (S,) int64
    tolerance: torch.Tensor  # (S,)
    best_loss: torch.Tensor  # (S,) lowest loss seen: its image is the answer
    best_image: torch.Tensor  # (S, C, R, R)
    plateau_loss: torch.Tensor  # (S,) loss at the last improvement larger than `tolerance`
    stalled: torch.Tensor  # (S,) int64 iterations since then
    m: torch.Tensor  # (S, z_dim) Adam first moment
    v: torch.Tensor  # (S, z_dim) Adam second moment
    steps: torch.Tensor  # (S,) int64 iterations run

    def __len__(self) -> int:
        return self.z.shape[0]

    def select(self, rows: torch.Tensor) -> _Slots:
        return _Slots(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @staticmethod
    def cat(parts: list[_Slots]) -> _Slots:
        return _Slots(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(_Slots)})


@dataclass
class _Search:
    """Book-keeping for one admitted job across its restarts."""

    job: SearchJob
    admitted: float
    live: int  # restarts still in the table
    loss: float = math.inf
    restart: int = -1
    generated: torch.Tensor | None = None
    iterations: int = 0
    seconds: float = 0.0

    def offer(self, restart: int, loss: float, image: torch.Tensor, iterations: int) -> None:
        """A restart finished: keep it if it beats the best so far (ties go to the lower restart)."""
        if self.generated is None or (loss, restart) < (self.loss, self.restart):
            # a copy, not a view: the answer must not pin (or alias) the whole table's storage
            self.loss, self.restart, self.iterations = loss, restart, iterations
            self.generated = image.detach().to("cpu", copy=True)


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
    ) -> None:
        self.generator = generator
        self.discriminator = discriminator
        self.encoder = encoder
        self.device = torch.device(device)
        self.dtype = autocast_dtype(precision, self.device)
        config = generator.config
        self.channels, self.resolution, self.z_dim = config.channels, config.resolution, config.z_dim
        self._slots: _Slots | None = None
        self._owner: list[int] = []  # search key of each row
        self._restart: list[int] = []  # restart index of each row
        self._prior: list[bool] = []  # whether each row's loss has the discriminator's prior term
        self._searching: list[bool] = []  # whether each row has a budget above 0 (needs gradients)
        self._searches: dict[int, _Search] = {}
        self._finished: list[int] = []
        self._next_key = 0

    @property
    def live_slots(self) -> int:
        """Rows that the next `step()` computes."""
        return len(self._owner)

    def add(self, job: SearchJob) -> int:
        """Admit a job: one new slot per restart. Returns its key for `pop`/`cancel`."""
        job.check(self.channels, self.resolution)
        params, count, budget = job.params, job.params.restarts, job.budget
        key, self._next_key = self._next_key, self._next_key + 1
        weights = importance_weights(job.hole.to(self.device), params.window)

        def fill(value: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.full((count,), value, dtype=dtype, device=self.device)

        target = job.target.to(self.device, torch.float32).masked_fill(job.hole.to(self.device), 0.0)
        z = self._start(params, target, job.hole.to(self.device))
        new = _Slots(
            z=z,
            target=target.expand(count, -1, -1, -1).clone(),
            weights=weights.expand(count, 1, -1, -1).clone(),
            lr=fill(params.lr),
            prior_weight=fill(params.prior_weight),
            z_bound=fill(params.z_bound),
            budget=fill(budget, torch.int64),
            patience=fill(params.patience, torch.int64),
            tolerance=fill(params.tolerance),
            best_loss=fill(math.inf),
            best_image=torch.zeros(count, self.channels, self.resolution, self.resolution, device=self.device),
            plateau_loss=fill(math.inf),
            stalled=fill(0, torch.int64),
            m=torch.zeros(count, self.z_dim, device=self.device),
            v=torch.zeros(count, self.z_dim, device=self.device),
            steps=fill(0, torch.int64),
        )
        self._slots = new if self._slots is None else _Slots.cat([self._slots, new])
        self._owner += [key] * count
        self._restart += list(range(count))
        self._prior += [params.prior_weight > 0] * count
        self._searching += [budget > 0] * count
        self._searches[key] = _Search(job=job, admitted=time.perf_counter(), live=count)
        return key

    def _start(self, params: SearchParams, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """(restarts, z_dim) starts: seeded Gaussian draws, or E's guess (plus seeded noise after restart 0)."""
        noise = torch.stack([initial_z(params.seed, r, self.z_dim) for r in range(params.restarts)]).to(self.device)
        if params.init == "random":
            return noise
        if self.encoder is None:
            raise ParamsError("init=encoder needs a model with an encoder: use init=random or a model version with one")
        with torch.no_grad():
            guess = self.encoder(target[None], hole[None, None].float()).float()
        noise[0] = 0.0  # restart 0 is the guess itself
        bound = params.z_bound
        return (guess + params.init_noise * noise).clamp(-bound, bound)

    def _context(self) -> contextlib.AbstractContextManager[object]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _loss(self, slots: _Slots, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row loss and G(z); D runs over the rows with a prior term only (all of them: the original path)."""
        with self._context():
            image = self.generator(z)
            if all(self._prior):
                logits = self.discriminator(image)
        if all(self._prior):
            image, logits = image.float(), logits.float()
            return contextual_loss(image, slots.target, slots.weights) + slots.prior_weight * prior_loss(logits), image
        image = image.float()
        loss = contextual_loss(image, slots.target, slots.weights)
        if any(self._prior):
            rows = torch.tensor([r for r, prior in enumerate(self._prior) if prior], device=self.device)
            with self._context():
                logits = self.discriminator(image[rows]).float()
            loss = loss.index_add(0, rows, slots.prior_weight[rows] * prior_loss(logits))
        return loss, image

    def step(self) -> list[int]:
        """One iteration for every live slot; returns the keys of searches that finished in it."""
        slots = self._slots
        if slots is None or len(slots) == 0:
            return []
        if not any(self._searching):  # one-pass rows only: their answer is G(z) at the start
            with torch.no_grad():
                loss, image = self._loss(slots, slots.z)
                self._record(slots, loss, image)
                slots.steps += 1
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
        """Keep each row's best image; count iterations without a `tolerance`-sized improvement."""
        better = loss < slots.best_loss
        slots.best_loss = torch.where(better, loss, slots.best_loss)
        slots.best_image = torch.where(better[:, None, None, None], image, slots.best_image)
        improved = loss < slots.plateau_loss * (1 - slots.tolerance)
        slots.plateau_loss = torch.where(improved, loss, slots.plateau_loss)
        slots.stalled = torch.where(improved, torch.zeros_like(slots.stalled), slots.stalled + 1)

    def _retire(self, slots: _Slots) -> list[int]:
        """Drop rows at their budget or on a plateau; finish searches with no live row left."""
        done = (slots.steps >= slots.budget) | (slots.stalled >= slots.patience)
        if not bool(done.any()):
            return []
        now = time.perf_counter()
        finished: list[int] = []
        for row in done.nonzero().flatten().tolist():
            search = self._searches[self._owner[row]]
            search.offer(
                self._restart[row],
                float(slots.best_loss[row]),
                slots.best_image[row],
                int(torch.minimum(slots.steps[row], slots.budget[row])),  # a one-pass row ran 0 iterations
            )
            search.live -= 1
            if search.live == 0:
                search.seconds = now - search.admitted
                finished.append(self._owner[row])
        keep = (~done).nonzero().flatten()
        self._slots = slots.select(keep)
        self._keep_rows(keep.tolist())
        self._finished += finished
        return finished

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
        """Forget a search, live or finished, and free its slots (client gone, deadline passed)."""
        if key not in self._searches:
            return
        del self._searches[key]
        if key in self._finished:
            self._finished.remove(key)
        rows = [r for r, owner in enumerate(self._owner) if owner != key]
        if self._slots is not None and len(rows) != len(self._owner):
            self._slots = self._slots.select(torch.tensor(rows, dtype=torch.int64, device=self.device))
            self._keep_rows(rows)

    def _keep_rows(self, rows: list[int]) -> None:
        """The host-side row lists follow the tensors' rows."""
        self._owner = [self._owner[r] for r in rows]
        self._restart = [self._restart[r] for r in rows]
        self._prior = [self._prior[r] for r in rows]
        self._searching = [self._searching[r] for r in rows]

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
                    steps = int(torch.minimum(self._slots.steps[row], self._slots.budget[row]))
                    best = (loss, self._restart[row], self._slots.best_image[row], steps)
        loss, _, generated, iterations = best
        assert generated is not None, "a search has a best image once it has taken a step"
        elapsed = time.perf_counter() - search.admitted
        return SearchResult(
            generated=generated.detach().to("cpu", copy=True), loss=loss, iterations=iterations, seconds=elapsed
        )
