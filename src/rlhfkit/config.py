"""Typed run configs: dataclasses with a one-line doc per field, YAML files, CLI overrides, validation.

Precedence: dataclass defaults < `--config file.yaml` < command-line flags. Every field becomes a flag
(`learning_rate` -> `--learning-rate`); booleans take `--flag` / `--no-flag`. Field names follow TRL's where the
concept is the same (`beta`, `loss_type`, `max_length`, `max_prompt_length`, `learning_rate`).
The resolved config is written to `config.yaml` in the run's output folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar

from rlhfkit.errors import RlhfkitError


def f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - `help` reads best here
    """A config field with its one-line doc (shown by --help)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainConfig:
    """Fields shared by every trainer (SFT, DPO, reward model, PPO). Each subclass adds only fields its trainer
    reads, and `validate()` checks them (a subclass checks its own after its parent's)."""

    model: Optional[str] = f(None, "starting model: hub id or local folder (default: SmolLM2-135M-Instruct)")
    data: Optional[str] = f(None, "training data file (JSONL/JSON/Parquet/datasets folder) or bundled:NAME")
    output: Optional[str] = f(None, "output folder; rerunning on the same folder resumes from its last checkpoint")
    eval_data: Optional[str] = f(None, "held-out data file (overrides eval_fraction)")
    eval_fraction: float = f(0.0, "share of prompts held out for evaluation when eval_data is not given")
    # model & adapters
    lora: bool = f(False, "train LoRA adapters instead of all weights")
    lora_r: int = f(16, "LoRA rank")
    lora_alpha: int = f(32, "LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = f(0.0, "dropout on the LoRA input")
    lora_target_modules: list = f(LORA_TARGETS, "module names that get adapters")
    lora_layers: int = f(0, "adapters only in the last N transformer layers (0 = all): the backward pass stops at "
                            "the lowest adapted layer, so each step costs less (the demo uses it on CPU)")
    save_adapter_only: bool = f(False, "final/ holds only the LoRA adapter instead of merged weights")
    use_chat_template: Optional[bool] = f(None, "apply the tokenizer's chat template (default: when it has one)")
    # precision & schedule
    precision: str = f("auto", "bf16 (autocast over fp32 master weights), fp32, or auto: bf16 where it is native "
                               "(CUDA, CPUs with AMX/AVX512-BF16), else fp32")
    batch_size: int = f(8, "examples (pairs for DPO/RM) per optimizer micro-batch")
    gradient_accumulation_steps: int = f(1, "micro-batches per optimizer step")
    learning_rate: float = f(5e-7, "peak learning rate")
    lr_scheduler: str = f("linear", "constant | linear | cosine (decay after warm-up)")
    warmup_ratio: float = f(0.0, "share of the optimizer steps spent warming up linearly from 0")
    warmup_steps: int = f(0, "warm-up steps (overrides warmup_ratio when > 0)")
    weight_decay: float = f(0.0, "AdamW weight decay")
    max_grad_norm: float = f(1.0, "clip the gradient norm to this (0 = no clipping)")
    num_epochs: float = f(1.0, "passes over the training data (ignored when max_steps > 0)")
    max_steps: int = f(0, "stop after this many optimizer steps (0 = use num_epochs)")
    max_length: int = f(512, "max prompt + completion tokens")
    max_prompt_length: Optional[int] = f(256, "max prompt tokens (left-truncated)")
    activation_checkpointing: str = f("selective", "off | selective (recompute element-wise ops: ~60% less "
                                                   "activation memory, a few % slower) | full (recompute layers); "
                                                   "with --lean, only for models the lean layers do not recognise")
    lean: bool = f(False, "Llama-style layers run memory-lean autograd functions (models/kernels/lean.py): about "
                          "selective checkpointing's memory without its recompute overhead; other models keep "
                          "activation_checkpointing")
    release_memory: bool = f(True, "give freed memory back to the OS after every step (glibc malloc_trim): "
                                   "lower peak RSS for a few page faults")
    shuffle: bool = f(True, "shuffle the training examples each epoch (seeded)")
    seed: int = f(42, "random seed (data order, LoRA init)")
    # logging & checkpoints
    logging_steps: int = f(1, "write metrics every N optimizer steps")
    eval_steps: int = f(0, "evaluate every N steps (0 = only at the end)")
    save_steps: int = f(50, "checkpoint every N optimizer steps (0 = only on interrupt)")
    save_total_limit: int = f(2, "checkpoints kept (oldest deleted first)")
    report_to: list = f([], "trackers besides metrics.jsonl: tensorboard, wandb")
    max_bad_steps: int = f(3, "stop after this many non-finite losses or gradients in a row")
    progress: bool = f(True, "show a progress bar")
    threads: int = f(0, "torch CPU threads (0 = torch's default)")

    def __post_init__(self) -> None:
        # the one derived value: the old spelling `activation_checkpointing: lean` (kept for one release) means
        # --lean, with selective checkpointing for models the lean layers do not recognise (its old fallback)
        if self.activation_checkpointing == "lean":
            self.lean, self.activation_checkpointing = True, "selective"

    def validate(self) -> None:
        """Reject values that would fail late or silently do the wrong thing (RlhfkitError naming the key)."""
        if self.precision not in ("auto", "bf16", "fp32"):
            bad(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.activation_checkpointing not in ("off", "selective", "full"):
            bad(f"activation_checkpointing must be off, selective or full, got {self.activation_checkpointing!r}")
        if self.lr_scheduler not in ("constant", "linear", "cosine"):
            bad(f"lr_scheduler must be constant, linear or cosine, got {self.lr_scheduler!r}")
        if self.lora_layers < 0:
            bad(f"lora_layers must be >= 0 (0 = all layers), got {self.lora_layers}")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_prompt_length is not None and not 0 < self.max_prompt_length < self.max_length:
            bad(f"max_prompt_length must be between 1 and max_length-1 ({self.max_length - 1}), "
                f"got {self.max_prompt_length}")
        if not 0.0 <= self.eval_fraction < 1.0:
            bad(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.learning_rate < 0:
            bad("learning_rate must be >= 0")
        if self.num_epochs <= 0 and self.max_steps <= 0:
            bad("give num_epochs > 0 or max_steps > 0")
        for t in self.report_to:
            if t not in ("tensorboard", "wandb", "none"):
                bad(f"report_to accepts tensorboard, wandb or none, got {t!r}")


def bad(msg: str) -> None:
    raise RlhfkitError(f"config: {msg}")


@dataclass
class BatchedConfig(TrainConfig):
    """Trainers that batch examples of a dataset (SFT, DPO, reward model; PPO batches prompts as it samples)."""

    group_by_length: bool = f(True, "order each epoch into batches of similar length (less padding)")


@dataclass
class PairConfig(BatchedConfig):
    """Trainers on preference pairs (DPO, reward model)."""

    data_format: Optional[str] = f(None, "force the data form: explicit | conversational | implicit")
    allow_base_model: bool = f(False, "start from a model without a chat template (normally SFT comes first)")

    def validate(self) -> None:
        super().validate()
        if self.data_format not in (None, "explicit", "conversational", "implicit"):
            bad(f"data_format must be explicit, conversational or implicit, got {self.data_format!r}")


@dataclass
class SFTConfig(BatchedConfig):
    """`rlhfkit sft`: supervised fine-tuning on prompt/response or message data."""

    learning_rate: float = f(2e-5, "peak learning rate")
    packing: bool = f(False, "pack several examples into one row (attention kept per example)")
    completion_only_loss: bool = f(True, "loss on completion tokens only (prompt tokens are context)")


@dataclass
class DPOConfig(PairConfig):
    """`rlhfkit dpo`: direct preference optimisation (and IPO, robust, hinge)."""

    loss_type: str = f("sigmoid", "sigmoid (DPO) | robust | ipo | hinge")
    beta: float = f(0.1, "strength of the KL anchor to the reference (temperature of the implicit reward)")
    label_smoothing: float = f(0.0, "assumed label-noise rate (cDPO for sigmoid, robust DPO for robust)")
    rpo_alpha: float = f(0.0, "weight of the chosen responses' per-token NLL added to the loss (RPO, Pang et al. "
                              "2024; TRL's rpo_alpha): keeps the preferred answers, EOS included, likely (0 = off)")
    reference: Optional[str] = f(None, "reference model (default: the starting model / LoRA adapter disabled)")
    precompute_ref: bool = f(False, "compute reference log-probs once, store them, free the reference model")
    prefix_sharing: bool = f(True, "compute the shared prompt once per pair (chosen and rejected in one row)")
    pack_length: int = f(512, "pack pairs into rows of about this many tokens (never shorter than the longest "
                              "pair; 0 = one pair per row, padded)")
    eval_only: bool = f(False, "old spelling of `rlhfkit dpo eval` (kept for one release): only compute eval/ "
                               "metrics of --model against --reference on --eval-data")

    def validate(self) -> None:
        super().validate()
        from rlhfkit.losses.preference import LOSS_TYPES

        if self.loss_type not in LOSS_TYPES:
            bad(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}")
        if self.beta <= 0:
            bad(f"beta must be > 0, got {self.beta}")
        if self.rpo_alpha < 0:
            bad(f"rpo_alpha must be >= 0, got {self.rpo_alpha}")
        if not 0.0 <= self.label_smoothing < 0.5:
            bad(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


@dataclass
class RewardConfig(PairConfig):
    """`rlhfkit rm train`: a reward model trained with the Bradley-Terry loss on preference pairs."""

    learning_rate: float = f(1e-5, "peak learning rate")
    center_rewards_coefficient: float = f(0.0, "weight of mean((r_chosen + r_rejected)^2) added to the loss, "
                                               "keeping rewards centred on 0 (Eisenstein et al. 2023; 0 = off)")
    use_margin: bool = f(True, "subtract a pair's `margin` field (when present) inside the loss")
    prefix_sharing: bool = f(True, "compute the shared prompt once per pair (chosen and rejected in one row)")
    pack_length: int = f(512, "pack pairs into rows of about this many tokens (0 = one pair per row, padded)")
    stats_pairs: int = f(128, "training pairs scored after training for the stored reward mean/std, both "
                              "sides (0 = all; 128 pairs = 256 rewards: the std to about 4%)")
    degenerate_negatives: float = f(0.0, "add this many extra training pairs per real pair, each putting a "
                                         "degenerate response (a token run, a repeated span, shuffled words) below "
                                         "the pair's rejected one, so PPO cannot farm scores with text no "
                                         "person would write (0 = off; see data/augment.py)")

    def validate(self) -> None:
        super().validate()
        if self.degenerate_negatives < 0:
            bad(f"degenerate_negatives must be >= 0 (extra pairs per real pair; 0 = off), got "
                f"{self.degenerate_negatives}")
        if self.center_rewards_coefficient < 0:
            bad(f"center_rewards_coefficient must be >= 0, got {self.center_rewards_coefficient}")


@dataclass
class PPOConfig(TrainConfig):
    """`rlhfkit ppo`: PPO against a reward model or a reward function (classic RLHF).

    `data` (`--prompts`) holds the prompts; batch_size is the number of prompts per rollout, split into
    num_mini_batches minibatches (one optimizer step each), each run as gradient_accumulation_steps micro-batches
    (same gradients, less activation memory); max_steps or
    num_epochs (passes over the prompts) set the number of PPO updates."""

    reward_model: Optional[str] = f(None, "reward model folder from `rlhfkit rm train` (or --reward-fn)")
    reward_fn: Optional[str] = f(None, "module:function taking (prompts, responses) -> list of floats, "
                                      "instead of a reward model")
    value_model: Optional[str] = f(None, "initial value model (default: the reward model; with --reward-fn: the "
                                         "policy's backbone with a new head)")
    reference: Optional[str] = f(None, "reference model (default: the starting policy / LoRA adapter disabled)")
    allow_base_model: bool = f(False, "start from a model without a chat template (normally SFT comes first)")
    learning_rate: float = f(3e-6, "peak learning rate of the policy")
    value_learning_rate: Optional[float] = f(None, "peak learning rate of the value model (default: learning_rate)")
    num_ppo_epochs: int = f(4, "passes over each rollout batch")
    num_mini_batches: int = f(1, "minibatches per pass (batch_size must divide into them)")
    max_new_tokens: int = f(48, "response length cap in tokens")
    temperature: float = f(0.7, "sampling temperature (log-probs use the same temperature)")
    top_p: float = f(1.0, "nucleus sampling threshold")
    kl_coef: float = f(0.05, "weight of the per-token KL penalty to the reference")
    kl_target: Optional[float] = f(None, "adaptive KL controller target (Ziegler et al. 2019); None = fixed kl_coef")
    kl_horizon: int = f(10000, "adaptive KL controller horizon")
    kl_estimator: str = f("k1", "per-token KL estimate in the reward: k1 (log ratio) or k3 (non-negative)")
    cliprange: float = f(0.2, "policy ratio clip epsilon")
    cliprange_value: float = f(0.2, "value clip epsilon")
    vf_coef: float = f(0.1, "weight of the value loss")
    gamma: float = f(1.0, "discount")
    lam: float = f(0.95, "GAE lambda")
    whiten_rewards: bool = f(False, "whiten the per-token rewards (mean kept) before GAE")
    missing_eos_penalty: Optional[float] = f(None, "subtracted from the score of responses that never emit EOS "
                                                   "(Huang et al. 2024; None = off)")
    kl_warn: float = f(10.0, "warn when the mean KL to the reference (nats per response) passes this bound")
    sample_steps: int = f(5, "write prompt/response/score samples to samples.jsonl every N updates (0 = off)")
    max_length: int = f(512, "max prompt tokens + max_new_tokens")
    max_prompt_length: Optional[int] = f(256, "max prompt tokens (left-truncated)")
    lean: bool = f(True, "Llama-style layers run memory-lean autograd functions (models/kernels/lean.py): about "
                         "selective checkpointing's memory without its recompute overhead (the PPO default since "
                         "it measured 1.07x faster per update); other models keep activation_checkpointing")

    def validate(self) -> None:
        super().validate()
        if bool(self.reward_model) == bool(self.reward_fn):
            bad("give exactly one of reward_model (--reward-model DIR) and reward_fn (--reward-fn module:function)")
        if self.reward_fn and ":" not in self.reward_fn:
            bad(f"reward_fn must look like module:function, got {self.reward_fn!r}")
        if self.kl_estimator not in ("k1", "k3"):
            bad(f"kl_estimator must be k1 or k3, got {self.kl_estimator!r}")
        for name in ("num_ppo_epochs", "num_mini_batches", "max_new_tokens"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.num_mini_batches:
            bad(f"batch_size ({self.batch_size}) must be a multiple of num_mini_batches ({self.num_mini_batches})")
        if not 0 < self.top_p <= 1:
            bad(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0:
            bad(f"temperature must be > 0 for PPO sampling, got {self.temperature}")
        if self.kl_coef < 0 or self.cliprange <= 0 or self.cliprange_value <= 0:
            bad("kl_coef must be >= 0 and cliprange, cliprange_value > 0")


C = TypeVar("C", bound=TrainConfig)


def _field_type(cls: type, fld: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    t = hints[fld.name]
    if typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        t = args[0]
    return t


def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def add_config_args(parser: argparse.ArgumentParser, cls: type, *, short: Optional[dict] = None) -> None:
    """One flag per config field; defaults are left as None so we can tell what the user set."""
    parser.add_argument("--config", default=None, help="YAML file with config keys (flags override it)")
    for fld in dataclasses.fields(cls):
        t = _field_type(cls, fld)
        flag = "--" + fld.name.replace("_", "-")
        names = [flag] + ([short[fld.name]] if short and fld.name in short else [])
        help_ = fld.metadata.get("help", "")
        default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()  # type: ignore
        help_ = f"{help_} [default: {default}]".replace("%", "%%")  # argparse formats help strings with %
        if t is bool:
            parser.add_argument(*names, dest=fld.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_)
        elif t is list:
            parser.add_argument(*names, dest=fld.name, nargs="+", default=None, help=help_)
        else:
            parser.add_argument(*names, dest=fld.name, type=t, default=None, help=help_)


def _coerce(cls: type, fld: dataclasses.Field, value: Any, where: str) -> Any:
    t = _field_type(cls, fld)
    if value is None:
        return None
    try:
        if t is bool:
            return value if isinstance(value, bool) else _parse_bool(str(value))
        if t is list:
            return list(value) if isinstance(value, (list, tuple)) else [s for s in str(value).split(",") if s]
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is str:
            return str(value)
        return t(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise RlhfkitError(f"{where}: '{fld.name}' must be {t.__name__}, got {value!r}") from None


def load_yaml(path: str) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise RlhfkitError(f"config file {path} not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise RlhfkitError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RlhfkitError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def build_config(cls: type[C], args: Optional[argparse.Namespace] = None, *, yaml_path: Optional[str] = None,
                 **overrides: Any) -> C:
    """Defaults < YAML (`--config` or yaml_path) < flags in `args` that the user set < keyword overrides."""
    fields = {fl.name: fl for fl in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    yaml_path = yaml_path or (getattr(args, "config", None) if args is not None else None)
    if yaml_path:
        data = load_yaml(yaml_path)
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise RlhfkitError(f"{yaml_path}: unknown key(s) {', '.join(unknown)}; valid keys: "
                               f"{', '.join(sorted(fields))}")
        for k, v in data.items():
            values[k] = _coerce(cls, fields[k], v, yaml_path)
    if args is not None:
        for k in fields:
            v = getattr(args, k, None)
            if v is not None:
                values[k] = _coerce(cls, fields[k], v, "command line")
    for k, v in overrides.items():
        if k not in fields:
            raise RlhfkitError(f"unknown config key '{k}'; valid keys: {', '.join(sorted(fields))}")
        values[k] = v
    cfg = cls(**values)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """cfg.validate(): every config class checks its own fields after its parent's."""
    cfg.validate()


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: Path) -> None:
    import yaml

    from rlhfkit.files import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
