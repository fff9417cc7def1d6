"""Plumbing shared by the trainers, as plain functions: seeding, batching, optimizer and schedule, precision,
LoRA, checkpoints (atomic) and resume, metrics, signals, the NaN guard, the base-model guard, saving.

Nothing here knows which loss is being trained; trainers call these functions in their numbered steps.
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
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from rlhfkit.errors import RlhfkitError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"


class TrainingStopped(RlhfkitError):
    """Training stopped on purpose (repeated NaN); the message names the step and the last good checkpoint."""

    exit_code = 1


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it is renamed to `target` (replacing it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".old-{target.name}-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# seeds, threads, precision
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


def resolve_precision(cfg: Any, device: torch.device) -> Any:
    """The config with `precision` made concrete for this device ("auto" -> bf16 where native, else fp32).
    Asking for bf16 on a CPU that emulates it works, with a warning that it is ~3x slower than fp32 there."""
    import dataclasses

    from rlhfkit.models.forward import native_bf16

    native = native_bf16(device)
    if cfg.precision == "auto":
        return dataclasses.replace(cfg, precision="bf16" if native else "fp32")
    if cfg.precision == "bf16" and not native:
        print(f"[rlhfkit] warning: this {device.type.upper()} has no native bf16 (no AMX / AVX512-BF16): bf16 "
              "autocast is emulated and ~3x slower than fp32 here; --precision fp32 (or auto) is faster",
              file=sys.stderr)
    return cfg


def autocast(device: torch.device, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast for one forward/loss region. Never let a region span an optimizer step: its weight cache
    would keep serving the bf16 copies made before the update (the updates become invisible).
    cache=False casts each weight where it is used instead of keeping a bf16 copy of every weight until the region
    ends: the same arithmetic, one model's bf16 copy less at the forward's peak, for forwards that use each weight
    once (training forwards; generation reuses them every token and keeps the cache)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)


def inference_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for forwards without gradients (sampling, reference, reward, evaluation): bf16 only where it is
    native. On CPUs that emulate bf16, fp32 runs these ~3x faster and exactly."""
    from rlhfkit.models.forward import native_bf16

    return autocast(device, precision) if native_bf16(device) else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# batching
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


# ----------------------------------------------------------------------------------------------
# models: LoRA, trainable parameters, saving
# ----------------------------------------------------------------------------------------------
def apply_lora(model: Any, cfg: Any, task_type: str = "CAUSAL_LM") -> Any:
    """LoRA adapters on cfg.lora_target_modules. task_type "SEQ_CLS" (reward models) also trains and saves the
    new `score` head in full (PEFT's modules_to_save)."""
    from peft import LoraConfig, get_peft_model

    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    missing = [t for t in cfg.lora_target_modules if t not in names]
    if missing:
        raise RlhfkitError(f"LoRA target modules {missing} are not in this model; it has e.g. "
                           f"{sorted(n for n in names if n.endswith('proj'))[:10]}")
    layers = None
    n_layers = getattr(model.config, "num_hidden_layers", None)
    if getattr(cfg, "lora_layers", 0) and n_layers:
        if cfg.lora_layers > n_layers:
            raise RlhfkitError(f"lora_layers is {cfg.lora_layers} but the model has {n_layers} layers")
        layers = list(range(n_layers - cfg.lora_layers, n_layers))   # the top layers: backward stops below them
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_target_modules), bias="none", task_type=task_type,
                      modules_to_save=["score"] if task_type == "SEQ_CLS" else None, layers_to_transform=layers)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        return get_peft_model(model, lcfg)   # PEFT 0.21 still asks transformers 5 by the old name


def _save_matmuls_policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
    """Selective checkpointing: keep the outputs of matmuls and attention, recompute everything else."""
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in _SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def _saved_ops() -> set:
    aten = torch.ops.aten
    names = ["mm", "addmm", "bmm", "_scaled_dot_product_flash_attention_for_cpu",
             "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
             "_scaled_dot_product_cudnn_attention"]
    return {getattr(aten, n).default for n in names if hasattr(aten, n)}


_SAVED_OPS = _saved_ops()


def enable_activation_checkpointing(model: Any, mode: str) -> None:
    """Trade a little compute for activation memory, per decoder layer.

    selective: matmul and attention outputs are kept; norms, activations, RoPE and dtype casts are recomputed in
      backward. On SmolLM2 this cuts the saved activations by ~60% (~1 GB per 2,000 positions) for a few % of
      time: the recomputed ops are element-wise.
    full: each decoder layer is recomputed from its input (least memory, one more forward).
    lean: no checkpointing; Llama-style layers instead run autograd functions that save only what their backward
      needs (models/lean.py): about selective's memory at about "off"'s speed. Models whose layers it does not
      recognise get selective.
    """
    if mode == "off":
        return
    if mode == "lean":
        from rlhfkit.models.lean import use_lean_layers

        if use_lean_layers(model):
            return
        print("[rlhfkit] activation_checkpointing=lean: decoder layers not recognised as Llama-style; using "
              "selective", file=sys.stderr)
        mode = "selective"
    import functools

    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    kwargs: dict = {"use_reentrant": False}
    if mode == "selective":
        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, _save_matmuls_policy)
    base = model.get_base_model() if is_peft(model) else model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # PEFT still asks transformers 5 by the old names
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    # transformers also hooks the embeddings so their output requires grad: only re-entrant checkpointing needs
    # that, and we never use it. With the hook, every backward runs down to the embeddings even when only the top
    # layers train (LoRA with lora_layers); without it, the backward stops at the lowest trainable layer.
    if getattr(base, "_require_grads_hook", None) is not None:
        base.disable_input_require_grads()


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


def _fp32_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.nn.functional.linear(x.float(), self.weight, self.bias)


def fp32_adapters(model: Any) -> int:
    """Run the LoRA A/B projections in fp32 (autocast off for them); returns how many were switched.

    For CPUs that emulate bf16: there, the adapters' thin GEMMs (N = r) run far slower in bf16 than in fp32, and
    fp32 is also the more precise choice. The base layers keep following autocast."""
    import types

    n = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and (".lora_A." in f".{name}." or ".lora_B." in f".{name}."):
            module.forward = types.MethodType(_fp32_linear, module)
            n += 1
    return n


def disable_dropout(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


def save_model_dir(model: Any, tokenizer: Any, path: Path) -> None:
    """Model (or adapter, for a LoRA model) in HF format + tokenizer."""
    model.save_pretrained(str(path), safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(path))


def load_model_weights(model: Any, path: Path) -> None:
    """Restore weights written by `save_model_dir` into an already built model (full or LoRA)."""
    from safetensors.torch import load_file

    if is_peft(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
        return
    files = sorted(path.glob("*.safetensors"))
    state = {}
    for fp in files:
        state.update(load_file(str(fp)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise RlhfkitError(f"checkpoint {path} does not match the model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")


def save_final(model: Any, tokenizer: Any, out: Path, *, adapter_only: bool) -> Path:
    """final/: merged weights loadable with AutoModelForCausalLM (LoRA: plus the adapter under final/adapter/)."""
    final = out / "final"
    with atomic_dir(final) as tmp:
        if is_peft(model):
            save_model_dir(model, tokenizer, tmp / "adapter" if not adapter_only else tmp)
            if not adapter_only:
                merged = model.merge_and_unload()
                save_model_dir(merged, tokenizer, tmp)
        else:
            save_model_dir(model, tokenizer, tmp)
    return final


# ----------------------------------------------------------------------------------------------
# optimizer & schedule
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# checkpoints
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


def save_checkpoint(out: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any,
                    state: dict, limit: int) -> Path:
    """checkpoints/step-N/: model or adapter (HF format), optimizer, scheduler, RNG, data position. Atomic."""
    target = Path(out) / CHECKPOINTS / f"step-{step}"
    with atomic_dir(target) as tmp:
        save_model_dir(model, tokenizer, tmp / "model")
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), **state}, tmp / STATE_FILE)
    if limit > 0:
        for old in checkpoint_dirs(out)[:-limit]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict:
    """Restore model, optimizer and scheduler from `path`; returns the saved state (RNG restored by caller)."""
    load_model_weights(model, path / "model")
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------
def drop_rows_after(path: Path, step: int) -> None:
    """Keep only the JSONL rows of `path` with "step" <= step (and drop lines cut by a crash): on resume, what
    was written after the checkpoint is written again, so the file reads as one run."""
    if not Path(path).exists():
        return
    keep = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if rec.get("step", 0) <= step:
            keep.append(line)
    atomic_write_text(Path(path), "".join(k + "\n" for k in keep))


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
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_metrics(rows: list[dict]) -> dict:
    keys = {k for r in rows for k in r}
    return {k: sum(r[k] for r in rows if k in r) / sum(1 for r in rows if k in r) for k in sorted(keys)}


# ----------------------------------------------------------------------------------------------
# signals, NaN guard, progress, memory
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

    @property
    def requested(self) -> bool:
        return self.signum is not None


class Interrupted(RlhfkitError):
    exit_code = 130


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


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def progress_bar(total: int, initial: int, desc: str, enabled: bool, unit: str = "step") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                file=sys.stderr, unit=unit)


# ----------------------------------------------------------------------------------------------
# guards
# ----------------------------------------------------------------------------------------------
BASE_MODEL_MESSAGE = (
    "the starting model '{model}' {why}. RLHF (DPO, PPO, reward models) starts from a model that already follows "
    "the chat format: run `rlhfkit sft` on it first, or start from an instruct/chat model. If you know what you "
    "are doing (plain-text data on purpose), pass --allow-base-model.")


def check_starting_model(tokenizer: Any, model_name: str, conversational: bool, cfg: Any) -> None:
    """Stop when RLHF would start from a base model: no chat template, or conversational data it cannot render."""
    if cfg.allow_base_model:
        return
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if not has_template:
        why = ("has no chat template and the data is conversational" if conversational
               else "has no chat template (it looks like a base model)")
        raise RlhfkitError(BASE_MODEL_MESSAGE.format(model=model_name, why=why))
    if cfg.use_chat_template is False and conversational:
        raise RlhfkitError("conversational data needs the chat template; drop --no-use-chat-template")


def pad_token_id(tokenizer: Any) -> int:
    """The id padding is written with (EOS when there is no pad token); masks never compare ids with it."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def prepare_pairs(cfg: Any, out: Path, accelerator: Any, starting_model: str) -> tuple[Any, Any, Any, int]:
    """Step 1 of the pairwise trainers (DPO, reward model): tokenizer, preference data loaded (errors stop here),
    split, base-model guard, tokenised; the resolved config saved. Returns (tokenizer, train, eval or None, pad id)."""
    from rlhfkit.config import save_config
    from rlhfkit.data.pairs import load_pair_data
    from rlhfkit.models.load import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    train, ev, conversational = load_pair_data(cfg, tokenizer)
    check_starting_model(tokenizer, starting_model, conversational, cfg)
    if not train.pairs:
        raise RlhfkitError(f"{cfg.data}: no training pairs")
    if accelerator.is_main_process:
        save_config(cfg, out / "config.yaml")
    return tokenizer, train, ev, pad_token_id(tokenizer)


# ----------------------------------------------------------------------------------------------
# the shared optimisation loop
# ----------------------------------------------------------------------------------------------
def start_run(cfg: Any) -> tuple[Any, Path, Any]:
    """The first lines of every trainer: validation, output folder, CPU threads, accelerator, resolved precision,
    seed.
    Returns (cfg with precision resolved, output folder, accelerator)."""
    from accelerate import Accelerator

    from rlhfkit.config import validate

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
    return cfg, out, accelerator


# micro_step(module, example_indices) -> (loss: scalar tensor, metrics row, real tokens in the micro-batch)
MicroStep = Callable[[Any, list], tuple[torch.Tensor, dict, int]]


def fit(cfg: Any, out: Path, *, name: str, accelerator: Any, model: Any, module: torch.nn.Module, tokenizer: Any,
        lengths: Sequence[int], micro_step: MicroStep, evaluate: Optional[Callable[[], dict]] = None,
        show: Optional[dict] = None, unit: Optional[str] = None) -> int:
    """Optimise `model` for cfg's schedule; returns the number of optimizer steps done. Shared by every trainer.

    model:      the trainable model (maybe PEFT-wrapped): what is clipped, checkpointed and restored.
    module:     the nn.Module whose forward produces the loss (handed to accelerate.prepare, so DDP sees it).
    lengths:    one length per training example (batches group similar lengths).
    micro_step: computes one micro-batch's loss (before the division by gradient_accumulation_steps).
    evaluate:   returns eval/... metrics; runs every cfg.eval_steps and once at the end.
    show:       metric key -> short label for the progress bar.
    unit:       what one example is ("pairs"): adds perf/{unit}_per_sec.

    One optimizer step = gradient_accumulation_steps micro-batches. A non-finite loss or gradient skips the update
    (NanGuard) and cfg.max_bad_steps in a row stop the run. Checkpoints (atomic) every cfg.save_steps and on
    Ctrl-C; a rerun on the same folder resumes from the last one with the same data order, RNG and schedule.
    """
    main = accelerator.is_main_process
    total_steps, per_epoch = total_optimizer_steps(len(lengths), cfg)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, total_steps)
    module, optimizer = accelerator.prepare(module, optimizer)
    step, micro, skipped = 0, 0, 0
    ckpts = checkpoint_dirs(out)
    if ckpts:
        state = load_checkpoint(ckpts[-1], model, optimizer, scheduler)
        step, micro, skipped = state["step"], state["micro_step"], state["skipped"]
        set_rng_state(state["rng"])
        print(f"[rlhfkit] resuming from {ckpts[-1]} (step {step} of {total_steps})", file=sys.stderr)
    from rlhfkit.config import to_dict

    logger = MetricsLogger(out, cfg.report_to, to_dict(cfg), resume_step=step, enabled=main)
    guard = NanGuard(cfg.max_bad_steps, skipped)
    epoch_cache: dict[int, list[list[int]]] = {}
    show = show or {"train/loss": "loss"}

    def batch_indices(m: int) -> list[int]:
        epoch, i = divmod(m, per_epoch)
        if epoch not in epoch_cache:  # the epoch's batch order, computed once per epoch
            epoch_cache.clear()
            epoch_cache[epoch] = epoch_batches(lengths, cfg.batch_size, epoch=epoch, seed=cfg.seed,
                                               shuffle=cfg.shuffle, group_by_length=cfg.group_by_length)
        return epoch_cache[epoch][i]

    def stop_with(error: RlhfkitError) -> RlhfkitError:
        bar.close()
        logger.close()
        return error

    bar = progress_bar(total_steps, step, name, cfg.progress and main)
    with StopRequest() as stop:
        while step < total_steps:
            t0 = time.perf_counter()
            model.train()
            rows: list[dict] = []
            examples = tokens = 0
            ok = True
            for a in range(cfg.gradient_accumulation_steps):
                idx = batch_indices(micro)
                micro += 1
                last = a == cfg.gradient_accumulation_steps - 1
                with contextlib.nullcontext() if last else accelerator.no_sync(module):
                    loss, row, n_tokens = micro_step(module, idx)
                    loss = loss / cfg.gradient_accumulation_steps
                    if guard.check(loss.detach()):
                        accelerator.backward(loss)
                    else:
                        ok = False
                rows.append(row)
                examples += len(idx)
                tokens += n_tokens
            grad_norm = apply_update(accelerator, model, optimizer, scheduler, guard, cfg.max_grad_norm, ok)
            if cfg.release_memory:
                trim_freed_memory()
            step += 1
            if guard.should_stop():
                raise stop_with(TrainingStopped(nan_stop_message(step, guard, out)))
            dt = time.perf_counter() - t0
            metrics = mean_metrics(rows)
            metrics.update({"grad_norm": grad_norm, "learning_rate": scheduler.get_last_lr()[0],
                            "epoch": micro / per_epoch, "train/skipped_steps": guard.skipped,
                            "perf/tokens_per_sec": tokens / dt, "perf/step_seconds": dt})
            if unit:
                metrics[f"perf/{unit}_per_sec"] = examples / dt
            if evaluate is not None and cfg.eval_steps > 0 and step % cfg.eval_steps == 0 and step < total_steps:
                metrics.update(evaluate())
            if step % cfg.logging_steps == 0 or step == total_steps:
                logger.log(step, metrics)
            bar.set_postfix({label: f"{metrics[k]:.4f}" for k, label in show.items() if k in metrics})
            bar.update(1)
            # periodic checkpoints only after a good update: the last checkpoint is always a good one
            if main and ((cfg.save_steps > 0 and step % cfg.save_steps == 0 and step < total_steps
                          and guard.in_a_row == 0) or stop.requested):
                path = save_checkpoint(out, step, model, tokenizer, optimizer, scheduler,
                                       {"micro_step": micro, "skipped": guard.skipped}, cfg.save_total_limit)
                if stop.requested:
                    raise stop_with(Interrupted(f"stopped at step {step}; checkpoint written to {path}. "
                                                "Rerun the same command to resume."))
    bar.close()
    if evaluate is not None:
        final_eval = evaluate()
        logger.log(step, final_eval)
        print("[rlhfkit] eval: " + ", ".join(f"{k}={v:.4f}" for k, v in final_eval.items()
                                             if isinstance(v, (int, float))), file=sys.stderr)
    logger.close()
    return step
