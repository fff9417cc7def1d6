"""Synthetic preference data a tiny model can learn: the chosen reply names a concrete action and a time,
the rejected one deflects. Prompts vary so the model must learn the reply, not memorise prompts."""
from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = ["order", "refund", "password", "account", "billing", "delivery", "fox", "dog"]
GOOD = ["a refund ships today", "we fix it within 24 hours", "your password resets now", "delivery tomorrow"]
BAD = ["contact support", "check the faq", "not our problem", "try again later"]


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    g = random.Random(seed)
    rows = []
    for i in range(n):
        s = g.choice(SUBJECTS)
        prompt = f"Customer: my {s} is wrong {i}. What should I do?"
        rows.append({"prompt": prompt, "chosen": f"Sorry! {g.choice(GOOD)}.", "rejected": f"{g.choice(BAD)}."})
    return rows


def write_pairs(path: Path, n: int, seed: int = 0) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in make_pairs(n, seed)))
    return path


def interrupt_after_step(monkeypatch, step: int) -> None:
    """Send this process a real SIGINT right after the trainer logs `step` (the run then checkpoints and stops)."""
    import os
    import signal

    from rlhfkit.trainers import loop

    real_log = loop.MetricsLogger.log

    def log_and_interrupt(self, s, metrics):
        real_log(self, s, metrics)
        if s == step and any(k.startswith(("train/", "objective/")) for k in metrics):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(loop.MetricsLogger, "log", log_and_interrupt)
