"""Model set-up for training: one `prepare_trainable` (dropout off, LoRA, fp32 adapters where bf16 is emulated,
activation checkpointing or the lean layers, device), the attention switch, and saving / loading weights.

Every trainer prepares its trainable models through `prepare_trainable`, so the sequence is written once:

    disable_dropout -> apply_lora (cfg.lora) -> fp32_adapters (bf16 emulated) -> lean layers (cfg.lean) or
    activation checkpointing -> device

Frozen models (reference, reward) are loaded in their inference dtype by `models/load.py` and never pass here.
"""
from __future__ import annotations

import functools
import types
import warnings
from pathlib import Path
from typing import Any

import torch

from rlhfkit.console import note
from rlhfkit.errors import RlhfkitError
from rlhfkit.files import atomic_dir
from rlhfkit.models.forward import causal_lm, native_bf16
from rlhfkit.models.kernels import attention as packed


def prepare_trainable(model: Any, cfg: Any, device: torch.device, task_type: str = "CAUSAL_LM") -> Any:
    """The trainable `model` ready for training on `device` (module doc). Returns it (PEFT-wrapped with cfg.lora).

    cfg: any training config (lora, lora_*, precision, activation_checkpointing); task_type "SEQ_CLS" for reward
    and value models (their new `score` head is trained in full beside the adapters)."""
    disable_dropout(model)
    if cfg.lora:
        model = apply_lora(model, cfg, task_type=task_type)
        if cfg.precision == "bf16" and not native_bf16(device):
            fp32_adapters(model)
    if not (cfg.lean and use_lean(model, cfg.activation_checkpointing)):
        enable_activation_checkpointing(model, cfg.activation_checkpointing)
    return model.to(device)


def use_lean(model: Any, fallback: str) -> bool:
    """Switch the decoder layers to the lean autograd functions (models/kernels/lean.py); False, with a message
    naming the `fallback` checkpointing mode, when the layers are not Llama-style."""
    from rlhfkit.models.kernels.lean import use_lean_layers

    if use_lean_layers(model):
        return True
    note(f"--lean: decoder layers not recognised as Llama-style; using {fallback} activation checkpointing")
    return False


# ----------------------------------------------------------------------------------------------
# the pieces of prepare_trainable
# ----------------------------------------------------------------------------------------------
def disable_dropout(model: torch.nn.Module) -> None:
    """p = 0 in every dropout layer: RLHF compares log-probs of two forwards, which dropout would make noisy."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def apply_lora(model: Any, cfg: Any, task_type: str = "CAUSAL_LM") -> Any:
    """LoRA adapters on cfg.lora_target_modules (of the top cfg.lora_layers layers when > 0). task_type "SEQ_CLS"
    (reward models) also trains and saves the new `score` head in full (PEFT's modules_to_save)."""
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


def _fp32_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.nn.functional.linear(x.float(), self.weight, self.bias)


def fp32_adapters(model: Any) -> int:
    """Run the LoRA A/B projections in fp32 (autocast off for them); returns how many were switched.

    For CPUs that emulate bf16: there, the adapters' thin GEMMs (N = r) run far slower in bf16 than in fp32, and
    fp32 is also the more precise choice. The base layers keep following autocast."""
    n = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and (".lora_A." in f".{name}." or ".lora_B." in f".{name}."):
            module.forward = types.MethodType(_fp32_linear, module)
            n += 1
    return n


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
      needs (models/kernels/lean.py): about selective's memory at about "off"'s speed. Models whose layers it does
      not recognise get selective.
    """
    if mode == "off":
        return
    if mode == "lean":                  # the old spelling of --lean (kept for one release)
        if use_lean(model, "selective"):
            return
        mode = "selective"
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


def use_packed_attention(model: Any) -> bool:
    """Switch a transformers model (or PEFT-wrapped one) from sdpa to `rlhfkit_packed` (models/kernels/attention.py);
    True when it now uses it. Models on another implementation (eager, flash) are left as they are: packed batches
    then get a mask."""
    lm = causal_lm(model)
    impl = getattr(lm.config, "_attn_implementation", None)
    if impl == packed.NAME:
        return True
    if impl != "sdpa":
        return False
    packed.register()
    lm.set_attn_implementation(packed.NAME)
    return lm.config._attn_implementation == packed.NAME


# ----------------------------------------------------------------------------------------------
# counting, saving, loading
# ----------------------------------------------------------------------------------------------
def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
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
    """Restore weights written by `save_model_dir` into an already built model (full or LoRA). safetensors only:
    nothing read here can execute code."""
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
