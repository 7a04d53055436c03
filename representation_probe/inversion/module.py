"""InversionModule: gradient descent on the input image toward a layer's embedding of a target."""

from __future__ import annotations

import contextlib
import math
import time
from functools import partial

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn
from torch.utils.data import DataLoader

from representation_probe import metrics
from representation_probe.config.optimizers import optimizer_factory
from representation_probe.inversion.objective import Sample, target_scales
from representation_probe.inversion.options import Schedule, check, eps_scale, scheduled
from representation_probe.inversion.smoothing import smooth
from representation_probe.metrics import doubts
from representation_probe.models import LayerEmbedder
from representation_probe.runs.resources import plain_cuda_check
from representation_probe.tracking.keys import sample_key, varying_ids

plain_cuda_check()  # after importing Lightning, which made it cost ~45 us per Adam step here


def nothing_listens_to_backward(trainer: L.Trainer, module: L.LightningModule) -> bool:
    """True when manual_backward(loss) would do nothing but loss.backward(): one device, a precision
    without loss scaling (32-true, bf16-mixed), no profiler, and no callback or module overriding the
    backward hooks. Dispatching those hooks was Lightning's largest per-step cost in the profile of a
    small MLP's inversion (bench/RESULTS.md); a callback that overrides one gets them all, through
    manual_backward."""
    precision = trainer.precision_plugin
    if (type(trainer.strategy) is not SingleDeviceStrategy or not isinstance(trainer.profiler, PassThroughProfiler)
            or type(precision) not in (Precision, MixedPrecision) or getattr(precision, "scaler", None) is not None):
        return False
    hooks = ("on_before_backward", "on_after_backward")
    callbacks = any(getattr(type(c), h) is not getattr(Callback, h) for c in trainer.callbacks for h in hooks)
    return not callbacks and not any(getattr(type(module), h) is not getattr(L.LightningModule, h)
                                     for h in (*hooks, "backward"))


class InversionModule(L.LightningModule):
    """The only parameter is the batch of images a_n; the backbone is frozen and outside the tree.

    Each sample has its own layer and target. Per step: loss = sum_i |O_l(a_n) - O_l(a)| (L1, or
    squared L2), a_{n+1} = N_c(a_n - eps_n * step(g)) with the optional 3x3 Gaussian N_c of eq. 5.
    With an `eps_by_layer` table, eps_n is the lr schedule times the sample's layer entry.

    Any optimiser but plain SGD (eq. 4, whose eps is the step itself) follows each sample's loss divided by
    its target embedding's norm (L1, or squared L2): Adam's steps do not depend on the gradient's scale but
    for its eps (1e-8), which swamps the gradient of a layer whose activations are tiny (an untrained
    efficientnet_b0's at 32 px are ~1e-14, and a_g never moved); divided, eps is relative to the layer's own
    scale. The recorded loss is the paper's sum.
    """

    def __init__(
        self,
        embedder: LayerEmbedder,
        targets: torch.Tensor,
        samples: list[Sample],
        steps: int,
        optimizer: str | partial,
        lr: Schedule,
        blur_sigma: Schedule = None,
        clamp: bool = False,
        loss: str = "l1",
        init_mean: float = 0.7,
        init_std: float = 0.05,
        shift_std: float = 0.05,
        record_every: int = 10,
        image_every: int = 100,
        eps_by_layer: dict[str, float] | None = None,
        steps_per_batch: int | None = None,
        bf16_until: float | None = None,
    ):
        super().__init__()
        check(steps, lr, blur_sigma, clamp, loss, init_mean, init_std, shift_std, record_every, image_every,
              steps_per_batch, bf16_until)
        self.automatic_optimization = False
        # Not a submodule: Lightning must neither count, train() nor checkpoint the frozen backbone.
        object.__setattr__(self, "embedder", embedder)
        self.samples = samples
        optimizer = optimizer_factory(optimizer, name="inversion.optimizer")
        self.scaled = optimizer.func is not torch.optim.SGD  # see the class's docstring
        self.steps, self.optimizer_factory, self.lr, self.blur_sigma = steps, optimizer, lr, blur_sigma
        self.clamp, self.loss_kind, self.record_every, self.image_every = clamp, loss, record_every, image_every
        init, shift = zip(*(metrics.draws(s.seed, targets.shape[1:], init_mean, init_std, shift_std)
                            for s in samples))
        self.image = nn.Parameter(torch.stack(init))
        self.register_buffer("start", self.image.detach().clone(), persistent=False)  # a_0, for the doubt checks
        self.register_buffer("targets", targets)
        self.register_buffer("shifted", targets + torch.stack(shift))
        self.groups = {layer: torch.tensor([i for i, s in enumerate(samples) if s.layer == layer])
                       for layer in dict.fromkeys(s.layer for s in samples)}
        self.steps_per_batch = steps_per_batch
        self.bf16_steps = round((bf16_until or 0) * steps)  # steps [0, bf16_steps) in bf16, the rest float32
        self.register_buffer("eps_scale", eps_scale(eps_by_layer, samples, optimizer), persistent=False)
        self.history: list[dict] = []  # rows of metrics.csv
        self.plain_backward = False  # decided when training starts
        self.diverged_at: int | None = None
        self.steps_done = 0  # fewer than `steps` when a callback stops the run early
        self.first_step: list[float] | None = None  # per sample: the largest pixel change of the first update
        self.largest_pixel = self.start.abs().flatten(1).amax(1).tolist()

    # ---- the forward map and distances --------------------------------------------------------
    def embed(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(self.groups) == 1:  # one layer: every sample, in order, without a gather
            return {layer: self.embedder(images, layer) for layer in self.groups}
        return {layer: self.embedder(images[idx], layer) for layer, idx in self.groups.items()}

    def distances(self, images: torch.Tensor, with_m_g: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-sample loss and m_g = ||O_l(images) - O_l(a)||_2 against the target embeddings (m_g only
        when asked: steps that record nothing skip its norm)."""
        per_layer = {}
        for layer, emb in self.embed(images).items():
            diff = (emb - self.target_embeddings[layer]).flatten(1)
            per_layer[layer] = (diff.abs().sum(1) if self.loss_kind == "l1" else diff.pow(2).sum(1),
                                metrics.norm(diff.detach()) if with_m_g else None)
        if len(per_layer) == 1:  # one layer: already in sample order
            return next(iter(per_layer.values()))
        loss = images.new_zeros(len(self.samples))
        m_g = images.new_zeros(len(self.samples)) if with_m_g else None
        for layer, (layer_loss, layer_m_g) in per_layer.items():
            loss = loss.index_add(0, self.groups[layer], layer_loss)
            if with_m_g:
                m_g = m_g.index_add(0, self.groups[layer], layer_m_g)
        return loss, m_g

    def on_fit_start(self) -> None:
        self.embedder.to(self.device)
        self.groups = {layer: idx.to(self.device) for layer, idx in self.groups.items()}
        with torch.no_grad():
            self.target_embeddings = self.embed(self.targets)
            self.loss_scale, self.target_spread = target_scales(self.target_embeddings, self.groups, len(self.samples),
                                                                self.loss_kind, self.scaled)
            start = time.perf_counter()  # the second forward, warmed up: it sizes the batches of steps
            _, self.m_s = self.distances(self.shifted)
            self.forward_seconds = time.perf_counter() - start
            for _ in range(4 if self.forward_seconds < 1e-3 else 0):  # a cheap one: the least of five, as load
                start = time.perf_counter()  # only ever adds time (one slow forward made batches of 3 MLP steps)
                self.distances(self.shifted)
                self.forward_seconds = min(self.forward_seconds, time.perf_counter() - start)
        self.m_i_ref = metrics.distance(self.shifted, self.targets)

    # ---- optimisation --------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        """Batches of consecutive steps, as (first, stop); the data is the target. Several steps per batch
        spread Lightning's per-batch cost (~1 ms) over cheap steps (an MLP's take ~0.5 ms); the updates and
        their results are the same for any grouping. Two numbers, not the steps themselves: the DataLoader
        and Lightning walk a batch element by element (~20 Python calls for each)."""
        k = self.steps_per_batch or self._steps_per_batch()
        return DataLoader([(s, min(s + k, self.steps)) for s in range(0, self.steps, k)], batch_size=None)

    def _steps_per_batch(self, budget: float = 0.1) -> int:
        """As many steps as take about `budget` seconds, so the progress bar still moves several times
        a second: a step (forward, backward twice its cost, update) takes ~3 forwards; 1 for a ResNet.
        Lightning's loop and the bar's self.log cost ~1.5 ms per batch, ~0.03 ms a step at 50 steps."""
        return max(1, min(1000, math.floor(budget / (3 * self.forward_seconds))))

    def on_train_start(self) -> None:
        self.plain_backward = nothing_listens_to_backward(self.trainer, self)

    def configure_optimizers(self):
        return self.optimizer_factory(params=[self.image], lr=scheduled(self.lr, 0, self.steps))

    def training_step(self, steps: tuple[int, int], batch_idx: int) -> None:
        optimizer = self.optimizers()
        for step in range(*steps):
            self._update(optimizer, step)
            if self.diverged_at is not None:
                break
        self.steps_done = steps[1]  # once per batch: setting a Module attribute costs ~20 Python calls

    def progress(self) -> tuple[int, int, dict[str, float]]:
        """(steps done, steps, the latest record's mean m_g and m_g/m_s) for a progress bar (api/progress.py)."""
        last = self.history[-len(self.samples):]
        values = {}
        if last:
            ratios = [row["m_g"] / m_s for row, m_s in zip(last, self.m_s.tolist()) if m_s]
            values = {"m_g": sum(row["m_g"] for row in last) / len(last)}
            values |= {"m_g/m_s": sum(ratios) / len(ratios)} if ratios else {}
        return self.steps_done, self.steps, values

    def _update(self, optimizer, step: int) -> None:
        """One step of eq. 4/5: a_{n+1} = N_c(a_n - eps_n * step(g))."""
        record = step % self.record_every == 0
        low = step < self.bf16_steps  # inversion.bf16_until: bf16's speed where its gradient noise does not matter
        mixed = low or torch.is_autocast_enabled(self.image.device.type)  # or trainer.precision=bf16-mixed
        with torch.autocast(self.image.device.type, dtype=torch.bfloat16) if low else contextlib.nullcontext():
            loss, m_g = self.distances(self.image, with_m_g=record and not mixed)
        total = (loss / self.loss_scale).sum()  # per-sample losses summed: samples stay independent
        if not math.isfinite(total.item()):  # one check: NaN and inf propagate through the sum
            self.diverged_at = step
            self.trainer.should_stop = True
            return
        lr = scheduled(self.lr, step, self.steps)
        if record:  # distances of a_n, before this step's update
            self._record(step, *(self.exact_distances() if mixed else (loss.detach(), m_g)), lr)
        for group in optimizer.optimizer.param_groups:  # the torch optimizer: Lightning's wrapper only forwards these
            group["lr"] = lr
        optimizer.optimizer.zero_grad(set_to_none=True)
        if self.plain_backward:
            total.backward()  # what manual_backward would end in, without dispatching hooks nobody overrides
        else:
            self.manual_backward(total)
        if self.eps_scale is not None:
            self.image.grad.mul_(self.eps_scale)  # per-layer eps (SGD: eps_l * g exactly)
        before = self.image.detach().clone() if step == 0 else None
        optimizer.step()
        sigma = scheduled(self.blur_sigma, step, self.steps)
        if sigma or self.clamp:
            with torch.no_grad():
                if sigma:
                    self.image.copy_(smooth(self.image, sigma))
                if self.clamp:
                    self.image.clamp_(0, 1)
        if before is not None:  # how far the first update moved each sample's pixels, for the doubt checks
            self.first_step = (self.image.detach() - before).abs().flatten(1).amax(1).tolist()

    @torch.no_grad()
    def exact_distances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and m_g of the current a_n in float32. Lightning's bf16-mixed runs the whole training_step
        under autocast; the recorded distances step out of it (the gradient's forward stays bf16)."""
        with torch.autocast(self.image.device.type, enabled=False):
            return self.distances(self.image)

    def _record(self, step: int, loss: torch.Tensor, m_g: torch.Tensor, lr: float) -> torch.Tensor:
        """Append the step's metrics.csv rows, log them, and return m_i."""
        m_i = metrics.distance(self.image.detach(), self.targets)
        values = zip(loss.tolist(), m_g.tolist(), m_i.tolist())  # one copy each, not one per sample (GPU)
        rows = [dict(step=step, layer=s.layer, image=s.image, seed=s.seed, loss=l, m_g=g, m_i=i, lr=lr)
                for s, (l, g, i) in zip(self.samples, values)]
        self.history += rows
        if self.loggers:
            self._log(step, rows, lr)
        return m_i

    def _log(self, step: int, rows: list[dict], lr: float) -> None:
        """The same keys in every run, whatever it holds: the mean over its samples (a sample's own value when
        it holds one). A sample's curve is a line of the run's per-kind chart at the end (tracking/results.py)."""
        ratios = [row["m_g"] / m_s if m_s else math.nan for row, m_s in zip(rows, self.m_s.tolist())]
        logged = {f"invert/{key}": sum(row[key] for row in rows) / len(rows) for key in ("loss", "m_g", "m_i")}
        logged |= {"invert/m_g_over_m_s": sum(ratios) / len(ratios), "invert/lr": lr}
        for logger in self.loggers:
            logger.log_metrics(logged, step=step)
            if hasattr(logger, "log_image") and (step % self.image_every == 0 or step == self.steps):
                images = list(self.image.detach().clamp(0, 1).cpu())
                logger.log_image("invert/a_g", images, step=step, caption=self.captions)

    @property
    def captions(self) -> list[str]:
        """Each sample's name in the a_g panel: what varies in the run (`conv3`, `chelsea/seed1`)."""
        rows = [dict(layer=s.layer, image=s.image, seed=s.seed) for s in self.samples]
        varying = varying_ids(rows) or ["layer"]
        return [sample_key(row, varying) for row in rows]

    # ---- results -------------------------------------------------------------------------------
    def on_train_end(self) -> None:
        """Distances of the final a_g (after the last update), also as the last metrics.csv rows."""
        loss, m_g = self.exact_distances()
        if self.diverged_at is None and not torch.isfinite(m_g).all():  # the last update overflowed
            self.diverged_at = self.steps_done
        step = self.diverged_at if self.diverged_at is not None else self.steps_done
        m_i = self._record(step, loss, m_g, scheduled(self.lr, step, self.steps))
        self.final = dict(loss=loss, m_g=m_g, m_i=m_i)

    @torch.no_grad()
    def results(self) -> list[dict]:
        """Final loss, m_g, m_i, m_s, m_i_ref, m_g / m_s, PSNR and SSIM of each sample, and warnings
        about a finite but absurd result."""
        a_g = self.image.detach()
        psnr, ssim = metrics.psnr(a_g, self.targets), metrics.ssim(a_g, self.targets)
        out = []
        for i, s in enumerate(self.samples):
            m_g, m_i = float(self.final["m_g"][i]), float(self.final["m_i"][i])
            out.append(dict(layer=s.layer, image=s.image, seed=s.seed, loss=float(self.final["loss"][i]),
                            m_g=m_g, m_i=m_i, m_s=float(self.m_s[i]), m_i_ref=float(self.m_i_ref[i]),
                            m_g_over_m_s=m_g / float(self.m_s[i]) if self.m_s[i] else math.nan,  # a' moved nothing
                            psnr=psnr[i], ssim=ssim[i],
                            warnings=self._warnings(i, m_g, m_i)))
        return out

    def _warnings(self, i: int, m_g: float, m_i: float) -> list[str]:
        """Doubts about sample i's result (metrics/doubts.py)."""
        start = self.history[i]  # step 0 is always recorded, sample i in row i
        farthest = math.sqrt(self.targets[i].numel())  # between an all-0 and an all-1 image
        found = doubts.constant_target(*self.target_spread[i], self.samples[i].layer)
        if self.first_step is not None:
            found += doubts.no_step(self.first_step[i], self.largest_pixel[i])
        if self.steps_done:
            moved = float((self.image[i].detach() - self.start[i]).abs().max())
            found += doubts.did_not_move("m_g", start["m_g"], m_g) + doubts.image_still(moved, self.largest_pixel[i])
        return found + doubts.ran_away(start["m_g"], m_g, m_i, farthest)
