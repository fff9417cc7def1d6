"""Old home of the shared training plumbing, kept for one release so scripts that import it keep working.

Where things live now:
- the run (start, resume, checkpoints, metrics, signals, NaN guard, optimizer, schedule): `rlhfkit.trainers.run`
- model set-up (dropout, LoRA, fp32 adapters, activation checkpointing, saving): `rlhfkit.models.setup`
- precision and autocast: `rlhfkit.models.forward`; pad id and the base-model guard: `rlhfkit.data.tokenize`
- atomic files: `rlhfkit.files`; messages and progress bars: `rlhfkit.console`
Code in rlhfkit itself imports from those modules (tests/test_imports.py checks that nothing imports this one).
"""
from rlhfkit.console import peak_rss_mb, progress_bar
from rlhfkit.data.tokenize import check_starting_model, pad_token_id
from rlhfkit.files import atomic_dir, atomic_write_text, drop_rows_after
from rlhfkit.models.forward import autocast, inference_autocast, resolve_precision
from rlhfkit.models.setup import (
    apply_lora,
    count_params,
    disable_dropout,
    enable_activation_checkpointing,
    fp32_adapters,
    is_peft,
    load_model_weights,
    save_final,
    save_model_dir,
)
from rlhfkit.trainers.run import (
    CHECKPOINTS,
    STATE_FILE,
    Interrupted,
    MetricsLogger,
    NanGuard,
    StopRequest,
    TrainingStopped,
    apply_update,
    checkpoint_dirs,
    epoch_batches,
    lr_lambda,
    make_optimizer,
    make_scheduler,
    mean_metrics,
    read_metrics,
    rng_state,
    set_rng_state,
    trim_freed_memory,
)

__all__ = ["CHECKPOINTS", "STATE_FILE", "Interrupted", "MetricsLogger", "NanGuard", "StopRequest", "TrainingStopped",
           "apply_lora", "apply_update", "atomic_dir", "atomic_write_text", "autocast", "check_starting_model",
           "checkpoint_dirs", "count_params", "disable_dropout", "drop_rows_after", "enable_activation_checkpointing",
           "epoch_batches", "fp32_adapters", "inference_autocast", "is_peft", "load_model_weights", "lr_lambda",
           "make_optimizer", "make_scheduler", "mean_metrics", "pad_token_id", "peak_rss_mb", "progress_bar",
           "read_metrics", "resolve_precision", "rng_state", "save_final", "save_model_dir", "set_rng_state",
           "trim_freed_memory"]
