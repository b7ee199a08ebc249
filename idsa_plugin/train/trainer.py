"""The training loop: AdamW, warm-up + cosine/multistep, EMA, exact resume, DDP through torchrun."""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..atomic import atomic_path
from ..devices import cpu_accelerates_bf16, cpu_description, tune_cpu_allocator
from ..evaluate import PATTERN_METRICS, data_root, model_upscaler, psnr_key, set_and_pattern_metrics
from ..models import build_model
from ..weights_io import read_weights, write_weights
from .config import PIXEL_LOSSES, TrainConfig
from .data import PairDataset, StepSampler, image_files
from .promote import pattern_failures

log = logging.getLogger("idsa_plugin.train")
CHECKPOINT = "checkpoint.pt"


def lr_factor(cfg: TrainConfig, step: int, cycle_start: int = 0) -> float:
    """Multiplier of ``cfg.lr`` at ``step``: linear warm-up, then cosine to ``min_lr`` (or multistep halving) at ``cfg.steps``.

    A warm restart at ``cycle_start`` (``train --more``) repeats the warm-up and the cosine from ``restart_lr``
    over the steps from there to ``cfg.steps``.
    """
    peak = (cfg.restart_lr or cfg.lr) / cfg.lr if cycle_start else 1.0
    local = step - cycle_start
    if local < cfg.warmup:
        return peak * (local + 1) / cfg.warmup
    if cfg.schedule == "multistep":
        return peak * 0.5 ** sum(step >= m for m in cfg.milestones)
    progress = min(1.0, (local - cfg.warmup) / max(1, cfg.steps - cycle_start - cfg.warmup))
    floor = cfg.min_lr / cfg.lr
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def compact_state(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint to land across sessions: the training weights and AdamW's moments in bf16 (about 0.4%
    relative rounding, which the next steps absorb), the EMA (what is validated and exported) kept in fp32.
    Loading casts them back (``load_state_dict`` copies into the fp32 parameters and optimizer state)."""
    def half(tensors: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() and v.ndim else v for k, v in tensors.items()}

    optimizer = {**state["optimizer"], "state": {i: half(s) for i, s in state["optimizer"]["state"].items()}}
    return {**state, "model": half(state["model"]), "optimizer": optimizer}


def sr_loss(sr: torch.Tensor, hr: torch.Tensor, fft_weight: float, pixel: str = "l1") -> torch.Tensor:
    """L1 (or L2, for the short fine-tune that ends a plan: PSNR is an L2 measure), plus an optional L1 on the
    2-D FFT amplitudes and phases (as real/imag parts)."""
    loss = getattr(F, PIXEL_LOSSES[pixel])(sr, hr)
    if fft_weight:
        loss = loss + fft_weight * F.l1_loss(torch.view_as_real(torch.fft.rfft2(sr.float())), torch.view_as_real(torch.fft.rfft2(hr.float())))
    return loss


def keep_pointwise_kernels_contiguous(model: nn.Module) -> None:
    """Give 1x1 conv kernels contiguous strides: the same memory as channels_last, but the strides their gradients
    come with, so that DDP's buckets match them (otherwise it warns and copies every gradient)."""
    for param in model.parameters():
        if param.dim() == 4 and param.shape[2:] == (1, 1):
            param.data = param.data.clone(memory_format=torch.contiguous_format)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast precision of ``amp`` (``auto``, ``bf16``, ``fp16`` or ``off``) on ``device``, None for fp32.

    ``auto``: bf16 on CUDA and on CPUs that accelerate it (AMX/AVX512-BF16), fp32 elsewhere. On the CPU only
    bf16 autocasts (fp16 there is emulated).
    """
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp = {amp!r}: choose auto, bf16, fp16 or off")
    if amp == "off" or (device.type == "cpu" and amp == "fp16"):
        return None
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" or cpu_accelerates_bf16() else None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def init_from(model: nn.Module, path: str) -> list[str]:
    """Copy every tensor of ``path`` whose name and shape fit (e.g. an x2 body into an x4 model)."""
    state, _ = read_weights(path)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # the trainer checkpoints and stops on either


def leave_stopping_to_the_trainer(_worker_id: int) -> None:
    """DataLoader worker set-up: ignore SIGINT/SIGTERM. A signal to the whole process group (Ctrl-C, ``timeout``,
    ``kill -- -PGID``, a job scheduler) killed the workers, and the run failed before it could checkpoint; the workers
    end with the trainer's process instead."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)


class Trainer:
    """Trains one model as described by a :class:`TrainConfig`; rank 0 validates and writes files."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
        self.owns_process_group = self.world > 1 and not dist.is_initialized()
        if self.owns_process_group:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if self.device.type == "cpu":
            tune_cpu_allocator()
        self.amp_dtype = autocast_dtype(cfg.amp, self.device)
        torch.manual_seed(cfg.seed)
        self.data = data_root(cfg.data or None)
        if self.data is None:
            raise FileNotFoundError("training data not found: set data= in the config, or IDSA_DATA")
        self.model = build_model(cfg.model, cfg.scale, **cfg.model_options).to(self.device)
        self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.init_from:
            missing = init_from(self.model, cfg.init_from)
            log.info("initialised from %s; %d tensors left fresh: %s", cfg.init_from, len(missing), ", ".join(missing))
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.best_psnr, self.best_passes, self.cycle_start, self.skipped = 0, -math.inf, False, 0, 0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(cfg, s, self.cycle_start))
        self.run_dir = cfg.run_dir
        self.stop_requested = False
        self.tensorboard: Any = None
        self.network: nn.Module = self.model
        if self.world > 1:
            keep_pointwise_kernels_contiguous(self.model)
            self.network = nn.parallel.DistributedDataParallel(self.model)
        if cfg.compile:
            self.network = torch.compile(self.network)

    # ---- checkpoints -------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "step": self.step, "best_psnr": self.best_psnr, "best_passes": self.best_passes, "torch_rng": torch.get_rng_state(),
            "cycle_start": self.cycle_start, "steps": self.cfg.steps,
            "config": json.dumps(dataclasses.asdict(self.cfg)),
        }

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.run_dir / CHECKPOINT) as tmp:
            torch.save(self.checkpoint_state(), tmp)

    def load_checkpoint(self) -> int | None:
        """Load the run's checkpoint, else the landed ``resume_state``; the schedule's end step it was made for."""
        path = self.run_dir / CHECKPOINT
        if not path.is_file() and self.cfg.resume_state:
            path = Path(self.cfg.resume_state)
        if not path.is_file():
            return None
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best_psnr = int(state["step"]), float(state["best_psnr"])
        self.best_passes = bool(state.get("best_passes", False))  # states from before the patterns were validated
        self.cycle_start = int(state.get("cycle_start", 0))
        torch.set_rng_state(state["torch_rng"].cpu())
        log.info("resumed %s at step %d from %s", self.cfg.name, self.step, path)
        return int(state.get("steps", json.loads(state["config"])["steps"]))

    def plan_more(self, more: int, planned: int | None) -> None:
        """``more`` steps from here in a new warm-restart cycle, unless an interrupted cycle (to ``planned``; None to drop it) is unfinished.
        The cycle picks its own best export, the highest Set5 among the validations that pass the patterns (within
        3 dB of bicubic), any validation while none has; promotion then weighs it against the landed weights."""
        if planned is not None and self.step < planned:
            self.cfg.steps = planned
            log.warning("%s: finishing the interrupted cycle (step %d of %d) instead of %d more steps; "
                        "run again for a new cycle, or drop this one with --new-cycle", self.cfg.name, self.step, planned, more)
            return
        self.cycle_start, self.cfg.steps, self.best_psnr, self.best_passes = self.step, self.step + more, -math.inf, False
        # the factors are relative to this config's lr, whatever lr the resumed state's schedule was built on
        self.scheduler.base_lrs = [self.cfg.lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = self.cfg.lr, self.cfg.lr * lr_factor(self.cfg, self.step, self.cycle_start)
        log.info("%s: warm restart at step %d, %d more steps", self.cfg.name, self.step, more)

    def land_resume_state(self) -> None:
        """Write the checkpoint to ``resume_state``, the one compact state that lands in the repository."""
        if self.rank != 0 or not self.cfg.resume_state:
            return
        target = Path(self.cfg.resume_state)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            torch.save(compact_state(torch.load(self.run_dir / CHECKPOINT, weights_only=True)), tmp)

    # ---- outputs -----------------------------------------------------------------------------
    def metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        hyper = {k: v for k, v in vars(self.model).items() if k in ("interp_skip",)}
        hyper.update(self.cfg.model_options)
        return {
            "architecture": "idsa" if self.cfg.model.startswith("idsa") else self.cfg.model,
            "variant": self.cfg.model, "scale": str(self.cfg.scale), "hyperparameters": hyper,
            "training_data": ", ".join(Path(d).name for d in self.cfg.train_dirs) + " (no evaluation images)",
            "steps": str(self.step), "hardware": f"{self._hardware()}, {self.world} process(es)",
            "training_precision": str(self.amp_dtype or torch.float32).removeprefix("torch."),
            "metrics": metrics, "license": "MIT", "config": dataclasses.asdict(self.cfg),
        }

    def _hardware(self) -> str:
        if self.device.type == "cuda":
            return f"cuda: {torch.cuda.get_device_name(self.device)}"
        return f"cpu: {cpu_description()}"

    def export(self, path: Path, metrics: dict[str, Any]) -> None:
        write_weights(path, self.ema.state_dict(), self.metadata(metrics))

    def validate(self) -> dict[str, float]:
        """The EMA's Y-PSNR/SSIM on the validation sets and its Y-PSNR on the synthetic patterns promotion checks."""
        return set_and_pattern_metrics(model_upscaler(self.ema), self.data, self.cfg.validate_sets, self.cfg.scale)

    def open_tensorboard(self) -> None:
        """Log to ``run_dir/tensorboard`` when TensorBoard is installed; a resumed run drops events after its checkpoint."""
        if self.rank != 0:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional: metrics.csv and curves.png are always written
            return
        self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1 if self.step else None)

    def log_row(self, row: dict[str, Any]) -> None:
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        if new:
            fields = ["step", "loss", "lr", "it_s"] + [f"{s}_{m}" for s in self.cfg.validate_sets for m in ("psnr", "ssim")]
            fields += PATTERN_METRICS
        else:  # a run resumed keeps its columns
            with open(path, newline="") as f:
                fields = next(csv.reader(f))
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.tensorboard is not None:
            for key, value in row.items():
                if key != "step":
                    self.tensorboard.add_scalar(f"train/{key}" if key in ("loss", "lr", "it_s") else f"val/{key}", float(value), row["step"])
            self.tensorboard.flush()

    # ---- loop --------------------------------------------------------------------------------
    def update_ema(self) -> None:
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for e, p in zip(self.ema.state_dict().values(), self.model.state_dict().values()):
                if e.dtype.is_floating_point:
                    e.mul_(decay).add_(p, alpha=1 - decay)
                else:
                    e.copy_(p)

    def optimize(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor, scaler: torch.amp.GradScaler) -> float | None:
        """One update; the loss, or None when the loss or the gradient is not finite: then nothing is updated
        (weights, optimizer state, EMA), so one bad batch cannot poison the run, its checkpoints and exports."""
        cfg = self.cfg
        lr_batch = lr_batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        hr_batch = hr_batch.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss = sr_loss(self.network(lr_batch), hr_batch, cfg.fft_weight, cfg.pixel_loss)
        self.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(self.optimizer)
        norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip or math.inf)
        finite = bool(torch.isfinite(loss)) and bool(torch.isfinite(norm))
        if finite or scaler.is_enabled():  # the fp16 scaler skips non-finite steps itself and lowers its scale
            scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step()
        if not finite:
            self.skipped += 1
            log.warning("%s step %d: loss %s, gradient norm %s: update skipped (%d so far)",
                        cfg.name, self.step, loss.item(), norm.item(), self.skipped)
            return None
        self.update_ema()
        return loss.item()

    def _request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    def stop_agreed(self) -> bool:
        """Whether any rank was asked to stop; all ranks answer alike, so none is left waiting in an all-reduce."""
        if self.world == 1:
            return self.stop_requested
        flag = torch.tensor([float(self.stop_requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def train(self, resume: bool = False, more: int = 0, new_cycle: bool = False) -> Path:
        """Train to ``cfg.steps``, or ``more`` steps past the resumed state, in a new cycle even if the resumed one is
        unfinished when ``new_cycle`` (or until SIGINT/SIGTERM to any rank: then checkpoint and return)."""
        cfg = self.cfg
        planned = self.load_checkpoint() if resume else None
        if more:
            self.plan_more(more, None if new_cycle else planned)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.open_tensorboard()
        dataset = PairDataset(image_files(self.data / d for d in cfg.train_dirs), cfg.scale, cfg.lr_patch, cfg.seed, cfg.pattern_prob)
        loader = DataLoader(dataset, batch_size=cfg.batch, sampler=StepSampler(cfg.batch, self.step, self.rank, self.world),
                            num_workers=cfg.workers, pin_memory=self.device.type == "cuda", persistent_workers=cfg.workers > 0,
                            worker_init_fn=leave_stopping_to_the_trainer)
        on_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers can only go there
        previous = {s: signal.signal(s, self._request_stop) for s in STOP_SIGNALS} if on_main_thread else {}
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        progress = None
        if cfg.progress and self.rank == 0:
            from tqdm import tqdm
            progress = tqdm(total=cfg.steps, initial=self.step, desc=cfg.name, unit="it", dynamic_ncols=True)
        window_start, window_steps, window_losses, loss_sum = time.perf_counter(), 0, 0, 0.0
        try:
            self.network.train()
            for lr_batch, hr_batch in loader:
                if self.step >= cfg.steps or self.stop_agreed():
                    break
                loss = self.optimize(lr_batch, hr_batch, scaler)
                self.step += 1
                window_steps += 1
                loss_sum += loss or 0.0
                window_losses += loss is not None
                if progress is not None:
                    progress.update(1)
                if self.step % cfg.checkpoint_every == 0 or self.step % cfg.validate_every == 0 or self.step == cfg.steps:
                    self.after_window(loss_sum / max(1, window_losses), window_steps / (time.perf_counter() - window_start))
                    window_start, window_steps, window_losses, loss_sum = time.perf_counter(), 0, 0, 0.0
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if progress is not None:
                progress.close()
        if window_steps:
            self.after_window(loss_sum / max(1, window_losses), window_steps / (time.perf_counter() - window_start))
        self.save_checkpoint()
        self.land_resume_state()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.world > 1:
            write_weights(self.run_dir / f"last-rank{self.rank}.safetensors", self.model.state_dict(), {"step": str(self.step)})
        if self.owns_process_group:
            # closed while the interpreter is whole: left to exit, gloo's threads freed tensors after Python had gone (SIGABRT)
            dist.barrier()
            dist.destroy_process_group()
        return self.run_dir / "best.safetensors"

    def after_window(self, loss: float, its: float) -> None:
        row: dict[str, Any] = {"step": self.step, "loss": round(loss, 6), "lr": f"{self.scheduler.get_last_lr()[0]:.3g}", "it_s": round(its, 3)}
        selection_key = psnr_key(self.cfg.validate_sets[0])  # the column `best` is chosen by, and plotted
        if self.rank == 0 and (self.step % self.cfg.validate_every == 0 or self.step == self.cfg.steps):
            metrics = self.validate()
            row.update(metrics)
            failures = pattern_failures(metrics, None, self.cfg.scale)
            psnr = metrics[selection_key]
            if (not failures, psnr) > (self.best_passes, self.best_psnr):
                self.best_psnr, self.best_passes = psnr, not failures
                self.export(self.run_dir / "best.safetensors", {**metrics, "step": self.step})
            log.info("step %d: %s%s", self.step, metrics, f"; patterns failed: {', '.join(failures)}" if failures else "")
        if self.rank == 0:
            self.log_row(row)
            from .plot import plot_metrics
            plot_metrics(self.run_dir / "metrics.csv", self.run_dir / "curves.png", selection_key)
        self.save_checkpoint()
