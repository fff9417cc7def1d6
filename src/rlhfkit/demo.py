"""`rlhfkit demo`: the whole RLHF lifecycle on the bundled customer-support data with the default model, offline.

1. check the data (short quality report)          5. evaluate against the starting model (win rate, KL)
2. split it by prompt (train / held-out)           6. three before/after samples, the HTML report
3. train a reward model (LoRA), held-out accuracy  7. summary.json
4. align with DPO and/or PPO (LoRA)

Everything runs in this one process (models load once per stage, no interpreter start-ups between stages). The
step counts of the plan below are sized to finish `--method dpo` in under 10 minutes on a 2-core CPU; the README
gives the measured time. `--tiny` shrinks every stage to a few steps for smoke tests on a tiny model.
"""
from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from rlhfkit.errors import RlhfkitError

MARKER = ".rlhfkit-demo"


@dataclass(frozen=True)
class Plan:
    """Sizes of every stage (steps are optimizer steps of `batch_size` pairs / prompts)."""

    test_fraction: float = 0.15
    batch_size: int = 8
    max_length: int = 256
    max_prompt_length: int = 128
    lora_layers: int = 10
    rm_steps: int = 32
    rm_learning_rate: float = 5e-4
    rm_stats_pairs: int = 48
    dpo_steps: int = 20
    dpo_learning_rate: float = 5e-4
    dpo_beta: float = 0.1
    dpo_rpo_alpha: float = 1.0
    ppo_steps: int = 6
    ppo_learning_rate: float = 1e-4
    ppo_max_new_tokens: int = 48
    eval_prompts: int = 0          # 0 = every held-out prompt (60 on the bundled split): 24 gave a +-0.18 interval
    eval_batch_size: int = 24
    eval_max_new_tokens: int = 64
    temperature: float = 0.7


FULL = Plan()
TINY = Plan(lora_layers=1, eval_batch_size=4, rm_steps=2, dpo_steps=2, ppo_steps=1, eval_prompts=4,
            eval_max_new_tokens=8, ppo_max_new_tokens=8,
            max_length=96, max_prompt_length=48, rm_stats_pairs=16, batch_size=4)


# ----------------------------------------------------------------------------------------------
# small helpers: stage banners, a resident-memory sampler
# ----------------------------------------------------------------------------------------------
class RssSampler:
    """Peak resident memory of this process over a stretch of time (the kernel's ru_maxrss only ever grows, so it
    cannot give the peak of a later stage). Samples /proc/self/statm every 0.2 s in a daemon thread."""

    def __init__(self, every: float = 0.2):
        import os

        self.every, self.peak_mb, self._stop = every, 0.0, threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _now_mb(self) -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page_mb
        except OSError:
            from rlhfkit.console import peak_rss_mb

            return peak_rss_mb()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._now_mb())
            self._stop.wait(self.every)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._now_mb())


class Stages:
    def __init__(self, total: int):
        self.total, self.k, self.t0 = total, 0, time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.k += 1
        print(f"\n== [{self.k}/{self.total}] {name}  (elapsed {time.perf_counter() - self.t0:.0f} s)", flush=True)
        t = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t
        print(f"   done in {self.seconds[name]:.0f} s", flush=True)


def _prepare_output(out: Path) -> None:
    """A previous demo's folder (it has the marker) is replaced; any other non-empty folder is refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise RlhfkitError(f"{out} exists and was not written by `rlhfkit demo`: choose another --output")
        print(f"[rlhfkit] replacing the previous demo in {out}", file=sys.stderr)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by rlhfkit demo; the next demo run on this folder replaces it\n")


def _clip(text: str, n: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


# ----------------------------------------------------------------------------------------------
# the demo
# ----------------------------------------------------------------------------------------------
def run_demo(method: str = "dpo", output: str = "runs/demo", model: Optional[str] = None,
             data: str = "bundled:support", tiny: bool = False, seed: int = 42,
             plan: Optional[Plan] = None) -> dict:
    """Run the lifecycle; returns (and writes) summary.json's content."""
    if method not in ("dpo", "ppo", "both"):
        raise RlhfkitError(f"--method must be dpo, ppo or both, got {method!r}")
    plan = plan or (TINY if tiny else FULL)
    out = Path(output)
    _prepare_output(out)
    methods = ["dpo", "ppo"] if method == "both" else [method]
    stages = Stages(4 + 2 * len(methods) + (1 if method == "both" else 0))
    t_start = time.perf_counter()
    summary: dict[str, Any] = {"method": method, "model": model or "SmolLM2-135M-Instruct (default)",
                               "data": data, "plan": plan.__dict__, "models": {}, "methods": {}}
    with RssSampler() as whole:
        # 1. the data
        with stages("check the data"):
            from rlhfkit.data.validate import check_file

            report = check_file(data)
            print(report.format_text())
            if report.errors:
                raise RlhfkitError(f"{data} has errors: fix them first (`rlhfkit data check {data}`)")

        # 2. the split
        with stages("split by prompt into train and held-out parts"):
            from rlhfkit.data.io import split_file

            n_train, n_test = split_file(data, out / "data", test_fraction=plan.test_fraction, seed=seed)
            train, test = str(out / "data" / "train.jsonl"), str(out / "data" / "test.jsonl")
            print(f"train: {n_train} pairs, held-out: {n_test} pairs (no prompt on both sides)")

        # 3. the reward model
        with stages("train a reward model (LoRA)"), RssSampler() as rss:
            rm_final, rm_acc = _reward_model(plan, model, train, test, out / "rm", seed)
            print(f"reward model: held-out accuracy {rm_acc['accuracy']:.3f} on {rm_acc['pairs']} pairs "
                  f"(prefer-the-longer rule {rm_acc['baselines']['longer']:.3f}, chance 0.5)")
        summary["rm_accuracy"] = rm_acc["accuracy"]
        summary["models"]["rm"] = str(rm_final)
        summary["rm_peak_rss_mb"] = rss.peak_mb

        # 4-5. align with each method, then evaluate it against the starting model
        from rlhfkit.models.load import load_model, load_tokenizer
        from rlhfkit.models.scorer import RewardScorer

        shared: dict[str, Any] = {}
        for m in methods:
            with stages(f"align the SFT model with {m.upper()} (LoRA)"), RssSampler() as rss:
                t = time.perf_counter()
                final = (_dpo if m == "dpo" else _ppo)(plan, model, train, str(rm_final), out / m, seed)
                train_s = time.perf_counter() - t
            summary["models"][m] = str(final)
            with stages(f"evaluate {m.upper()} against the starting model on the held-out prompts"):
                from rlhfkit.eval.winrate import evaluate, format_report

                if not shared:
                    shared = {"tokenizer": load_tokenizer(model, quiet=True), "baseline": load_model(model, quiet=True),
                              "scorer": RewardScorer(str(rm_final), batch_size=plan.eval_batch_size)}
                ev = evaluate(str(out / m), test, reward_model=str(rm_final), baseline=model,
                              output=str(out / f"eval-{m}"), num_prompts=plan.eval_prompts,
                              max_new_tokens=plan.eval_max_new_tokens, temperature=plan.temperature, seed=seed,
                              batch_size=plan.eval_batch_size, max_prompt_length=plan.max_prompt_length,
                              models={**shared, "policy": load_model(str(final), quiet=True)})
                print(format_report(ev))
            summary["methods"][m] = {"win_rate": ev["win_rate"], "ci95": ev["ci95"], "kl": ev["kl"],
                                     "score": ev["score_policy"], "score_baseline": ev["score_baseline"],
                                     "length": ev["length_policy"], "length_baseline": ev["length_baseline"],
                                     "train_seconds": train_s, "peak_rss_mb": rss.peak_mb,
                                     "eval": str(out / f"eval-{m}")}
        if method == "both":
            with stages("PPO or DPO? side by side"):
                print(compare_table(summary["methods"]))

        # 6. before/after samples and the HTML report
        with stages("before/after samples and the HTML report"):
            first = methods[0]
            print(before_after(out / f"eval-{first}" / "samples.jsonl", k=3, method=first.upper()))
            runs = [out / "rm"] + [p for m in methods for p in (out / m, out / f"eval-{m}")]
            summary["report"] = _report(runs, out / "report.html")

    # 7. summary.json
    top = summary["methods"][methods[0]]
    summary.update(win_rate=top["win_rate"], ci95=top["ci95"], kl=top["kl"],
                   wall_seconds=time.perf_counter() - t_start, peak_rss_mb=whole.peak_mb,
                   stage_seconds=stages.seconds)
    from rlhfkit.files import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    lo, hi = top["ci95"]
    print(f"\n== done in {summary['wall_seconds']:.0f} s (peak memory {whole.peak_mb:,.0f} MB)")
    print(f"win rate of the {methods[0].upper()} model over the starting model (judged by the reward model): "
          f"{top['win_rate']:.2f} (95% CI {lo:.2f}-{hi:.2f})")
    print(f"report:  {summary['report'] or '(not written: see the error above)'}")
    print(f"summary: {out / 'summary.json'}")
    if summary["report"] is None:
        raise RlhfkitError(f"the report could not be written; the runs are kept: retry with "
                           f"`rlhfkit report {' '.join(map(str, runs))} --output {out / 'report.html'}`")
    return summary


def _reward_model(plan: Plan, model: Optional[str], train: str, test: str, out: Path, seed: int) -> tuple[Path, dict]:
    from rlhfkit.config import RewardConfig, build_config
    from rlhfkit.eval.preference import eval_rm
    from rlhfkit.trainers.reward import train_rm

    cfg = build_config(RewardConfig, model=model, data=train, output=str(out), lora=True, lora_layers=plan.lora_layers,
                       learning_rate=plan.rm_learning_rate, max_steps=plan.rm_steps, batch_size=plan.batch_size,
                       max_length=plan.max_length, max_prompt_length=plan.max_prompt_length, warmup_ratio=0.05,
                       save_steps=0, stats_pairs=plan.rm_stats_pairs, seed=seed)
    final = train_rm(cfg)
    return final, eval_rm(str(final), test, batch_size=plan.batch_size, progress=False)


def _dpo(plan: Plan, model: Optional[str], train: str, rm: str, out: Path, seed: int) -> Path:
    from rlhfkit.config import DPOConfig, build_config
    from rlhfkit.trainers.dpo import train_dpo

    cfg = build_config(DPOConfig, model=model, data=train, output=str(out), lora=True, lora_layers=plan.lora_layers,
                       learning_rate=plan.dpo_learning_rate, beta=plan.dpo_beta, rpo_alpha=plan.dpo_rpo_alpha,
                       max_steps=plan.dpo_steps,
                       batch_size=plan.batch_size, max_length=plan.max_length,
                       max_prompt_length=plan.max_prompt_length, warmup_ratio=0.1, save_steps=0, seed=seed)
    return train_dpo(cfg)


def _ppo(plan: Plan, model: Optional[str], train: str, rm: str, out: Path, seed: int) -> Path:
    from rlhfkit.config import PPOConfig, build_config
    from rlhfkit.trainers.ppo import train_ppo

    cfg = build_config(PPOConfig, model=model, data=train, output=str(out), reward_model=rm, lora=True,
                       lora_layers=plan.lora_layers,
                       learning_rate=plan.ppo_learning_rate, max_steps=plan.ppo_steps, batch_size=plan.batch_size,
                       max_new_tokens=plan.ppo_max_new_tokens, temperature=plan.temperature,
                       max_length=plan.max_prompt_length + plan.ppo_max_new_tokens,
                       max_prompt_length=plan.max_prompt_length, save_steps=0, sample_steps=1, seed=seed)
    return train_ppo(cfg)


def _report(runs: list[Path], output: Path) -> Optional[str]:
    try:
        from rlhfkit.eval.report import write_report

        return str(write_report([str(r) for r in runs], output))
    except (RlhfkitError, ImportError, OSError) as e:
        print(f"[rlhfkit] error: the HTML report failed: {e}", file=sys.stderr)
        return None


def compare_table(methods: dict) -> str:
    """The PPO-vs-DPO table of `--method both`, with the question answered on this data."""
    rows = [("win rate", "{:.2f}", "win_rate"), ("KL (nats)", "{:.2f}", "kl"), ("mean score", "{:.3f}", "score"),
            ("length (tokens)", "{:.1f}", "length"), ("train time (s)", "{:.0f}", "train_seconds"),
            ("peak memory (MB)", "{:,.0f}", "peak_rss_mb")]
    names = list(methods)
    lines = [f"{'':18}" + "".join(f"{n.upper():>12}" for n in names)]
    for label, fmt, key in rows:
        lines.append(f"{label:18}" + "".join(f"{fmt.format(methods[n][key]):>12}" for n in names))
    if {"dpo", "ppo"} <= set(names):
        d, p = methods["dpo"], methods["ppo"]
        better = "dpo" if d["win_rate"] >= p["win_rate"] else "ppo"
        faster = "dpo" if d["train_seconds"] <= p["train_seconds"] else "ppo"
        lines.append(f"PPO or DPO? On this data {better.upper()} wins more often against the starting model "
                     f"({methods[better]['win_rate']:.2f} vs "
                     f"{methods['ppo' if better == 'dpo' else 'dpo']['win_rate']:.2f})"
                     f" and {faster.upper()} trained faster: "
                     + ("DPO is the better first choice here (no reward model in its loop, fewer moving parts)."
                        if better == "dpo" else
                        "PPO pays for its extra models here; keep DPO as the cheaper baseline."))
    return "\n".join(lines)


def before_after(samples: Path, k: int = 3, method: str = "DPO") -> str:
    """k before/after samples: the largest score gains among the policy's whole answers (ended with EOS) first,
    then the rest: the largest gains overall are often answers cut at the length cap, which show little."""
    rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: (not r.get("eos_policy", True), -(r["score_policy"] - r["score_baseline"])))
    out = []
    for r in rows[:k]:
        out += [f"prompt:  {_clip(r['prompt'])}",
                f"  before ({r['score_baseline']:.2f}): {_clip(r['baseline'])}",
                f"  after  ({r['score_policy']:.2f}, {method}): {_clip(r['policy'])}", ""]
    return "\n".join(out).rstrip()
