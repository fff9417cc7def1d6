"""Run: the plumbing of one training run, shared by every trainer, so that each trainer's file holds only its
own loop and math.

A `Run` starts a run (validation, output folder, threads, accelerator, precision, seed), resumes it from the last
checkpoint (models, optimizers, schedulers and any other state with `state_dict`, RNG, data position), handles
SIGINT/SIGTERM (checkpoint at the end of the step, then stop), counts non-finite steps (NanGuard), writes
metrics.jsonl (+ TensorBoard / W&B) and the progress bar, and decides when to evaluate and to checkpoint.

Two ways to use it:
- supervised loops (SFT, DPO, reward model): `begin()` builds the optimizer and schedule and resumes; then per
  optimizer step `steps()` yields the step's micro-batches, the trainer computes each loss and hands it to
  `backward()`, and `update()` clips, steps, logs, evaluates and checkpoints (trainers/dpo.py shows the shape);
- loops with their own optimizers (PPO): `resume()` with the models and states to checkpoint, then per update
  `end_step()` and `save_if_due()` around the trainer's own optimizer steps.

Nothing here knows which loss is being trained.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from rlhfkit.console import note, progress_bar
from rlhfkit.errors import RlhfkitError
from rlhfkit.files import atomic_dir, drop_rows_after
from rlhfkit.models.setup import load_model_weights, save_model_dir

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"


class TrainingStopped(RlhfkitError):
    """Training stopped on purpose (repeated NaN); the message names the step and the last good checkpoint."""

    exit_code = 1


class Interrupted(RlhfkitError):
    """A requested stop (Ctrl-C, SIGTERM): the checkpoint is written; rerunning the command resumes."""

    exit_code = 130


# ----------------------------------------------------------------------------------------------
# seeds
# ----------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# batches, optimizer, schedule
# ----------------------------------------------------------------------------------------------
def epoch_batches(lengths: Sequence[int], batch_size: int, *, epoch: int, seed: int, shuffle: bool,
                  group_by_length: bool) -> list[list[int]]:
    """Indices of each batch of one epoch, a pure function of (epoch, seed): resume recomputes it exactly.

    group_by_length: shuffle, then sort within windows of 50 batches by length and shuffle the batches, so a
    batch holds examples of similar length (little padding) while the order stays random across windows.
    """
    n = len(lengths)
    order = list(range(n))
    g = random.Random(seed * 1_000_003 + epoch)
    if shuffle:
        g.shuffle(order)
    if group_by_length:
        window = batch_size * 50
        chunks = [sorted(order[i:i + window], key=lambda j: -lengths[j]) for i in range(0, n, window)]
        order = [j for c in chunks for j in c]
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if group_by_length and shuffle:
        g.shuffle(batches)
    return batches


def make_optimizer(model: torch.nn.Module, cfg: Any, lr: Optional[float] = None) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RlhfkitError("no trainable parameters (check --lora-target-modules)")
    # fused: one kernel over all parameters, no full-size temporaries (the foreach path allocates several
    # parameter-sized buffers per step: ~1 GB at the peak for a 135M model)
    return torch.optim.AdamW(params, lr=cfg.learning_rate if lr is None else lr, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=cfg.weight_decay, fused=True)


def lr_lambda(step: int, *, total: int, warmup: int, kind: str) -> float:
    """Multiplier of the peak LR at optimizer step `step` (0-based): linear warm-up, then constant/linear/cosine."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, total_steps: int) -> Any:
    warmup = cfg.warmup_steps if cfg.warmup_steps > 0 else int(cfg.warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, total=total_steps, warmup=warmup, kind=cfg.lr_scheduler))


def total_optimizer_steps(n_examples: int, cfg: Any) -> tuple[int, int]:
    """(optimizer steps in the run, micro-batches per epoch)."""
    per_epoch = math.ceil(n_examples / cfg.batch_size)
    if cfg.max_steps > 0:
        return cfg.max_steps, per_epoch
    return max(1, math.ceil(per_epoch * cfg.num_epochs / cfg.gradient_accumulation_steps)), per_epoch


def trim_freed_memory() -> None:
    """Give the heap's free pages back to the OS (glibc `malloc_trim`); called once per optimizer step (PPO: once
    per update, after all its minibatches).

    glibc keeps freed activation blocks in its heap; the next step's differently sized requests then fragment it
    and the process's RSS ratchets up to a high-water mark well above what is live. Trimming once per step keeps
    each step's peak at what that step needs, for one page fault per reused page per step (cheaper than making
    every large allocation a fresh mmap, which measured 1.7x slower steps). No-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ----------------------------------------------------------------------------------------------
# checkpoints: checkpoints/step-N/{model,value,...}/ in HF format + trainer_state.pt, written atomically
# ----------------------------------------------------------------------------------------------
def checkpoint_dirs(out: Path) -> list[Path]:
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if d.is_dir() and d.name.startswith("step-") and (d / STATE_FILE).is_file():
            try:
                found.append((int(d.name[5:]), d))
            except ValueError:
                continue
    return [d for _, d in sorted(found)]


def save_checkpoint(out: Path, step: int, models: dict, tokenizer: Any, states: dict, extra: dict,
                    limit: int) -> Path:
    """checkpoints/step-N/: each of `models` in its own folder (the tokenizer beside the first), and one
    trainer_state.pt with the step, the RNG, every state in `states` (optimizers, schedulers, controllers: any
    object with state_dict) and `extra`. Atomic; keeps the newest `limit` checkpoints (0 = all)."""
    target = Path(out) / CHECKPOINTS / f"step-{step}"
    with atomic_dir(target) as tmp:
        for i, (name, model) in enumerate(models.items()):
            save_model_dir(model, tokenizer if i == 0 else None, tmp / name)
        torch.save({"step": step, **{k: v.state_dict() for k, v in states.items()}, "rng": rng_state(), **extra},
                   tmp / STATE_FILE)
    if limit > 0:
        for old in checkpoint_dirs(out)[:-limit]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: Path, models: dict, states: dict) -> dict:
    """Restore `models` and `states` from `path` and the RNG; returns the saved dict (step, extra values)."""
    for name, model in models.items():
        load_model_weights(model, path / name)
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    for k, v in states.items():
        v.load_state_dict(state[k])
    set_rng_state(state["rng"])
    return state


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------
class MetricsLogger:
    """metrics.jsonl (one object per logged step) plus TensorBoard / W&B when asked.

    On resume, lines written after the checkpoint's step are dropped so the file reads as one run.
    """

    def __init__(self, out: Path, report_to: Sequence[str], config: dict, resume_step: int = 0,
                 enabled: bool = True):
        self.path = Path(out) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        drop_rows_after(self.path, resume_step)
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RlhfkitError("--report-to tensorboard needs the tensorboard package: "
                                   "pip install 'rlhfkit[tracking]'") from None
            self._tb = SummaryWriter(str(Path(out) / "tensorboard"), purge_step=resume_step + 1)
        if "wandb" in report_to:
            try:
                import wandb
            except ImportError:
                raise RlhfkitError("--report-to wandb needs the wandb package: pip install wandb") from None
            self._wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "rlhfkit"), config=config,
                                     dir=str(out), resume="allow")

    def log(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        # non-finite values (a skipped NaN step) are written as null: metrics.jsonl stays strict JSON
        rec = {"step": step, **{k: (float(v) if math.isfinite(v) else None) if isinstance(v, (int, float)) else v
                                for k, v in metrics.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_metrics(rows: list[dict]) -> dict:
    keys = {k for r in rows for k in r}
    return {k: sum(r[k] for r in rows if k in r) / sum(1 for r in rows if k in r) for k in sorted(keys)}


# ----------------------------------------------------------------------------------------------
# signals and the NaN guard
# ----------------------------------------------------------------------------------------------
class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the current step and exits cleanly.
    A second Ctrl-C interrupts at once (the last checkpoint stays intact: checkpoints are atomic)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._old: dict = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n[rlhfkit] {signal.Signals(signum).name}: finishing this step, writing a checkpoint, then "
              "stopping (press Ctrl-C again to abort now)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopRequest":
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None


class NanGuard:
    """Counts non-finite losses/gradients; the update is skipped; `max_bad` in a row stops the run."""

    def __init__(self, max_bad: int, skipped: int = 0) -> None:
        self.max_bad = max_bad
        self.in_a_row = 0
        self.skipped = skipped

    def check(self, *values: torch.Tensor) -> bool:
        ok = all(bool(torch.isfinite(v).all()) for v in values)
        if ok:
            self.in_a_row = 0
        else:
            self.in_a_row += 1
            self.skipped += 1
        return ok

    def should_stop(self) -> bool:
        return self.max_bad > 0 and self.in_a_row >= self.max_bad


def apply_update(accelerator: Any, model: Any, optimizer: Any, scheduler: Any, guard: Optional[NanGuard],
                 max_grad_norm: float, loss_ok: bool) -> float:
    """Clip, then step the optimizer unless the loss or the gradient norm is non-finite (counted by `guard`; with
    None the caller counts). The scheduler always advances, so a skipped update does not shift the schedule.
    Returns the grad norm (nan when the loss was not finite). The gradients are freed."""
    grad_norm = float("nan")
    if loss_ok:
        norm = accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                           max_grad_norm if max_grad_norm > 0 else float("inf"))
        grad_norm = float(norm)
        loss_ok = guard.check(torch.as_tensor(grad_norm)) if guard is not None else math.isfinite(grad_norm)
    if loss_ok:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return grad_norm


def nan_stop_message(step: int, guard: NanGuard, out: Path) -> str:
    ckpts = checkpoint_dirs(out)
    last = str(ckpts[-1]) if ckpts else "none yet (no checkpoint was written before the failure)"
    return (f"training stopped at step {step}: {guard.in_a_row} non-finite losses or gradients in a row "
            f"({guard.skipped} skipped updates in total). Last good checkpoint: {last}. Try a lower learning "
            "rate, fp32 precision, or check the data for extreme lengths.")


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
class Run:
    """One training run's plumbing (module doc). Use as a context manager: leaving it (normally or by an error)
    closes the progress bar and the trackers and restores the signal handlers.

    cfg: the resolved config (precision concrete); out: the output folder; step: optimizer steps (PPO: updates)
    done, resumed from the checkpoint; total_steps: the run's length in the same unit."""

    def __init__(self, cfg: Any, out: Path, accelerator: Any, name: str):
        self.cfg, self.out, self.accelerator, self.name = cfg, out, accelerator, name
        self.step = 0
        self.total_steps = 0
        self.unit = "step"
        self.guard = NanGuard(cfg.max_bad_steps)
        self.logger: Optional[MetricsLogger] = None
        self.bar: Any = None
        self.stop = StopRequest()
        self._models: dict = {}
        self._states: dict = {}
        self._tokenizer: Any = None

    @classmethod
    def start(cls, cfg: Any, name: str) -> "Run":
        """The first lines of every trainer: validation, output folder, CPU threads, accelerator, resolved
        precision, seed."""
        from accelerate import Accelerator

        from rlhfkit.config import validate
        from rlhfkit.models.forward import resolve_precision

        validate(cfg)  # configs built in Python skip build_config: check them here too
        if not cfg.output:
            raise RlhfkitError("give --output DIR (rerunning on the same folder resumes)")
        out = Path(cfg.output)
        out.mkdir(parents=True, exist_ok=True)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
        cfg = resolve_precision(cfg, accelerator.device)
        seed_everything(cfg.seed)
        return cls(cfg, out, accelerator, name)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def main(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.accelerator.is_main_process

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.__exit__()
        if self.bar is not None:
            self.bar.close()
        if self.logger is not None:
            self.logger.close()

    def save_config(self) -> None:
        """The resolved config to out/config.yaml (rank 0)."""
        from rlhfkit.config import save_config

        if self.main:
            save_config(self.cfg, self.out / "config.yaml")

    # ------------------------------------------------------------------------------------------
    # resume, logging, checkpoints
    # ------------------------------------------------------------------------------------------
    def resume(self, models: dict, states: dict, tokenizer: Any, *, total_steps: int, unit: str = "step") -> dict:
        """Remember what a checkpoint holds (`models`: folder name -> model, the tokenizer saved beside the first;
        `states`: key -> object with state_dict/load_state_dict), restore them from the newest checkpoint if
        there is one, then open metrics.jsonl, the progress bar and the signal handlers. Returns the saved dict
        ({} on a fresh run)."""
        from rlhfkit.config import to_dict

        self._models, self._states, self._tokenizer = models, states, tokenizer
        self.total_steps, self.unit = total_steps, unit
        saved: dict = {}
        ckpts = checkpoint_dirs(self.out)
        if ckpts:
            saved = load_checkpoint(ckpts[-1], models, states)
            self.step = saved["step"]
            self.guard = NanGuard(self.cfg.max_bad_steps, saved["skipped"])
            note(f"resuming from {ckpts[-1]} ({unit} {self.step} of {total_steps})")
        self.logger = MetricsLogger(self.out, self.cfg.report_to, to_dict(self.cfg), resume_step=self.step,
                                    enabled=self.main)
        self.bar = progress_bar(total_steps, self.step, self.name, self.cfg.progress and self.main)
        self.stop.__enter__()
        return saved

    def log(self, metrics: dict, step: Optional[int] = None) -> None:
        self.logger.log(self.step if step is None else step, metrics)

    def end_step(self) -> None:
        """Count one finished optimizer step (PPO: update); stop the run after too many non-finite ones."""
        self.step += 1
        if self.guard.should_stop():
            raise TrainingStopped(nan_stop_message(self.step, self.guard, self.out))

    def log_due(self) -> bool:
        return self.step % self.cfg.logging_steps == 0 or self.step == self.total_steps

    def checkpoint(self, extra: Optional[dict] = None) -> Path:
        return save_checkpoint(self.out, self.step, self._models, self._tokenizer, self._states,
                               {"skipped": self.guard.skipped, **(extra or {})}, self.cfg.save_total_limit)

    def save_if_due(self, extra: Optional[dict] = None) -> None:
        """A checkpoint every save_steps (only after a good update: the last checkpoint is always a good one) and
        on a stop request, after which the run ends with Interrupted."""
        cfg = self.cfg
        periodic = (cfg.save_steps > 0 and self.step % cfg.save_steps == 0 and self.step < self.total_steps
                    and self.guard.in_a_row == 0)
        if not self.main or not (periodic or self.stop.requested):
            return
        path = self.checkpoint(extra)
        if self.stop.requested:
            raise Interrupted(f"stopped at {self.unit} {self.step}; checkpoint written to {path}. "
                              "Rerun the same command to resume.")

    # ------------------------------------------------------------------------------------------
    # the supervised loop: begin -> for step in steps(): backward() per micro-batch; update() -> finish
    # ------------------------------------------------------------------------------------------
    def begin(self, model: Any, module: torch.nn.Module, tokenizer: Any, lengths: Sequence[int], *,
              evaluate: Optional[Callable[[], dict]] = None, show: Optional[dict] = None,
              unit: Optional[str] = None) -> torch.nn.Module:
        """Optimizer (AdamW) and schedule for cfg's length, both handed to accelerate with `module`, then resume.

        model:    the trainable model (maybe PEFT-wrapped): what is clipped, checkpointed and restored.
        module:   the nn.Module whose forward produces the loss (prepared by accelerate, so DDP sees it); returned.
        lengths:  one length per training example (batches group similar lengths).
        evaluate: returns eval/... metrics; runs every cfg.eval_steps and once at the end (`finish`).
        show:     metric key -> short label for the progress bar; unit: what one example is ("pairs")."""
        cfg = self.cfg
        self.total_steps, self._per_epoch = total_optimizer_steps(len(lengths), cfg)
        self._model, self._lengths, self._evaluate = model, lengths, evaluate
        self._show, self._example_unit = show or {"train/loss": "loss"}, unit
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.total_steps)
        module, self.optimizer = self.accelerator.prepare(module, self.optimizer)
        self._module = module
        saved = self.resume({"model": model}, {"optimizer": self.optimizer, "scheduler": self.scheduler},
                            tokenizer, total_steps=self.total_steps)
        self.micro = saved.get("micro_step", 0)
        self._epoch_cache: dict[int, list[list[int]]] = {}
        return module

    def _batch_indices(self, m: int) -> list[int]:
        """Example indices of micro-batch `m` of the run (epoch-major; each epoch's order computed once)."""
        epoch, i = divmod(m, self._per_epoch)
        if epoch not in self._epoch_cache:
            cfg = self.cfg
            self._epoch_cache = {epoch: epoch_batches(self._lengths, cfg.batch_size, epoch=epoch, seed=cfg.seed,
                                                      shuffle=cfg.shuffle, group_by_length=cfg.group_by_length)}
        return self._epoch_cache[epoch][i]

    def steps(self) -> Iterator[list[tuple[list[int], contextlib.AbstractContextManager]]]:
        """Per remaining optimizer step: its gradient_accumulation_steps micro-batches as (example indices, sync
        context). Run each micro-batch's forward and backward inside its context: gradients are all-reduced
        across processes on the last micro-batch only."""
        n = self.cfg.gradient_accumulation_steps
        while self.step < self.total_steps:
            self._t0 = time.perf_counter()
            self._model.train()
            self._rows, self._examples, self._tokens, self._ok = [], 0, 0, True
            micro_batches = []
            for a in range(n):
                idx = self._batch_indices(self.micro)
                self.micro += 1
                sync = contextlib.nullcontext() if a == n - 1 else self.accelerator.no_sync(self._module)
                micro_batches.append((idx, sync))
            yield micro_batches

    def backward(self, loss: torch.Tensor, row: dict, *, examples: int, tokens: int) -> None:
        """One micro-batch's loss (a scalar, before the division by gradient_accumulation_steps) and its logged
        row: back-propagated when finite, else the step's update is skipped (NanGuard)."""
        loss = loss / self.cfg.gradient_accumulation_steps
        if self.guard.check(loss.detach()):
            self.accelerator.backward(loss)
        else:
            self._ok = False
        self._rows.append(row)
        self._examples += examples
        self._tokens += tokens

    def update(self) -> None:
        """Clip and step (skipped on a non-finite loss or gradient), then the step's metrics, evaluation every
        eval_steps, the progress bar and a checkpoint when due."""
        cfg = self.cfg
        grad_norm = apply_update(self.accelerator, self._model, self.optimizer, self.scheduler, self.guard,
                                 cfg.max_grad_norm, self._ok)
        if cfg.release_memory:
            trim_freed_memory()
        self.end_step()
        dt = time.perf_counter() - self._t0
        metrics = mean_metrics(self._rows)
        metrics.update({"grad_norm": grad_norm, "learning_rate": self.scheduler.get_last_lr()[0],
                        "epoch": self.micro / self._per_epoch, "train/skipped_steps": self.guard.skipped,
                        "perf/tokens_per_sec": self._tokens / dt, "perf/step_seconds": dt})
        if self._example_unit:
            metrics[f"perf/{self._example_unit}_per_sec"] = self._examples / dt
        if (self._evaluate is not None and cfg.eval_steps > 0 and self.step % cfg.eval_steps == 0
                and self.step < self.total_steps):
            metrics.update(self._evaluate())
        if self.log_due():
            self.log(metrics)
        self.bar.set_postfix({label: f"{metrics[k]:.4f}" for k, label in self._show.items() if k in metrics})
        self.bar.update(1)
        self.save_if_due({"micro_step": self.micro})

    def finish(self) -> None:
        """After the last step: the final evaluation (logged and printed); trackers closed."""
        self.bar.close()
        if self._evaluate is not None:
            final_eval = self._evaluate()
            self.log(final_eval)
            note("eval: " + ", ".join(f"{k}={v:.4f}" for k, v in final_eval.items() if isinstance(v, (int, float))))
        self.logger.close()
