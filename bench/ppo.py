"""PPO seconds per update, generation speed and memory on the `ppo` peer workload of ../shared/bench/README.md.

usage:
  python bench/ppo.py --reward-model DIR [--steps 8] [--lora] [--trl] [--trl-python PY] [--repeat N]

DIR is the reward model both peers use (TRL's harness `rm` mode saves one as `rm-final`; any reward model
`rlhfkit rm train` wrote works too). Prints one JSON line per run; with --trl, TRL 1.12's PPOTrainer
(`trl_bench.py ppo`, run with --trl-python, a venv holding trl==1.12.0) runs the same workload right after ours
and a ratio table of seconds per update and peak RSS is printed at the end (stderr).

The workload (as the peer's): SmolLM2-135M-Instruct policy (full fine-tune), frozen reference copy, the reward model
DIR, value model initialised from it; the prompts of the first 64 usable HH-RLHF harmless pairs (plain text, no chat
template, left-truncated to 256 tokens), 8 prompts per rollout with one completion each, sampling T=1, top-p 1, top-k
off, at most 48 new tokens, stop at EOS; GAE gamma 1 lambda 0.95; 4 PPO epochs x 1 minibatch; kl_coef 0.05, vf_coef
0.1, cliprange 0.2; AdamW lr 5e-7 constant; bf16 autocast over fp32 weights for the training forwards. 8 updates,
the first 2 excluded from timing. --lora runs our LoRA mode (2 weight copies instead of 4) on the same workload.
--precision fp32 runs both peers in exact fp32 (TRL's harness with --no-bf16): the fair setting on CPUs that emulate
bf16, where any bf16 run is ~3x slower.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import TRL_PYTHON, WARMUP, run_child, run_trl, workload_file

PROMPTS, ROLLOUT, STEPS = 64, 8, 8
CHECKPOINTING, MICRO = "lean", 1         # our memory settings (see docs/performance.md, PPO section)


def workload_config(tmp: Path, steps: int, reward_model: str, lora: bool, precision: str, **overrides):
    """Our PPOConfig for the peer workload, its prompts written under tmp (also used by bench/ppo_phases.py)."""
    from rlhfkit.config import PPOConfig, build_config

    pairs = workload_file(tmp / "pairs.jsonl").read_text().splitlines()[:PROMPTS]
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": json.loads(line)["prompt"]}) + "\n" for line in pairs))
    kw = dict(data=str(prompts), output=str(tmp / "out"), reward_model=reward_model, batch_size=ROLLOUT,
              max_steps=steps, num_ppo_epochs=4, num_mini_batches=1, max_new_tokens=48, temperature=1.0, top_p=1.0,
              kl_coef=0.05, vf_coef=0.1, cliprange=0.2, cliprange_value=0.2, gamma=1.0, lam=0.95,
              learning_rate=5e-7, lr_scheduler="constant", warmup_steps=0, precision=precision,
              use_chat_template=False, max_prompt_length=256, max_length=256 + 48, save_steps=0, sample_steps=0,
              seed=42, progress=False, lora=lora, lora_r=16, lora_alpha=32)
    mode = overrides.pop("activation_checkpointing", "lean")
    # "lean" = the lean layers (PPO's default); any other mode = that checkpointing without them
    if mode == "lean":
        kw["lean"] = True
    else:
        kw.update(lean=False, activation_checkpointing=mode)
    return build_config(PPOConfig, **{**kw, **overrides})


def run_ours(steps: int, reward_model: str, lora: bool, precision: str, checkpointing: str, micro: int) -> dict:
    import platform
    import resource

    import torch

    from rlhfkit.trainers.ppo import train_ppo
    from rlhfkit.trainers.run import read_metrics

    tmp = Path(tempfile.mkdtemp(prefix="rlhfkit-bench-ppo-"))
    cfg = workload_config(tmp, steps, reward_model, lora, precision, activation_checkpointing=checkpointing,
                          gradient_accumulation_steps=micro)
    t0 = time.perf_counter()
    train_ppo(cfg)
    total = time.perf_counter() - t0
    rows = [r for r in read_metrics(tmp / "out") if "perf/step_seconds" in r]
    secs = [r["perf/step_seconds"] for r in rows]
    gen = [r["perf/generation_seconds"] for r in rows]
    tokens = [r["response/length_mean"] * ROLLOUT for r in rows]
    timed = slice(WARMUP, None)
    return {
        "peer": "rlhfkit", "mode": "ppo-lora" if lora else "ppo", "steps": len(rows), "warmup_steps_excluded": WARMUP,
        "sec_per_step_median": round(statistics.median(secs[timed]), 4),
        "sec_per_step_mean": round(statistics.mean(secs[timed]), 4),
        "generate_seconds_per_step_mean": round(statistics.mean(gen[timed]), 4),
        "gen_tokens_per_sec": round(sum(tokens[timed]) / sum(gen[timed]), 3),
        "sec_per_gen_token": round(sum(secs[timed]) / sum(tokens[timed]), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "step_seconds": [round(s, 3) for s in secs], "generated_tokens": [round(t) for t in tokens],
        "scores": [round(r["objective/scores"], 4) for r in rows], "kl": [round(r["objective/kl"], 4) for r in rows],
        "precision": precision + (" (bf16 autocast for training forwards; sampling and frozen forwards fp32 where "
                                  "bf16 is emulated)" if precision == "bf16" else ""),
        "activation_checkpointing": checkpointing, "micro_batches": micro,
        "torch_threads": torch.get_num_threads(), "wall_seconds_incl_setup": round(total, 1),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reward-model", required=True, help="reward model folder used by both peers")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--lora", action="store_true", help="our LoRA mode (TRL's run stays full)")
    ap.add_argument("--trl", action="store_true", help="also run TRL 1.12's PPOTrainer, alternating with ours")
    ap.add_argument("--trl-python", default=TRL_PYTHON.replace("trl-venv", "trl112-venv"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"],
                    help="ours; with fp32 TRL's harness runs with --no-bf16 too (both exact fp32)")
    ap.add_argument("--activation-checkpointing", default=CHECKPOINTING, choices=["lean", "selective", "full", "off"],
                    help="ours")
    ap.add_argument("--micro-batches", type=int, default=MICRO,
                    help="ours: gradient_accumulation_steps per PPO minibatch (same gradients, less memory)")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    rm = str(Path(args.reward_model).resolve())
    if args._child:
        print(json.dumps(run_ours(args.steps, rm, args.lora, args.precision, args.activation_checkpointing,
                                  args.micro_batches)), flush=True)
        return
    results = []
    for _ in range(args.repeat):
        ours = run_child(__file__, ["--_child", "--steps", str(args.steps), "--reward-model", rm,
                                    "--precision", args.precision, "--activation-checkpointing",
                                    args.activation_checkpointing, "--micro-batches", str(args.micro_batches)]
                           + (["--lora"] if args.lora else []))
        print(json.dumps(ours), flush=True)
        results.append(ours)
        if args.trl:
            trl = run_trl("ppo", args.steps, args.trl_python, {"RM_DIR": rm},
                          ["--no-bf16"] if args.precision == "fp32" else [])
            print(json.dumps(trl), flush=True)
            results.append(trl)
    o = [r for r in results if r["peer"] == "rlhfkit"]
    t = [r for r in results if r["peer"] == "trl"]
    if o and t:
        os_, ts = statistics.median(r["sec_per_step_median"] for r in o), \
            statistics.median(r["sec_per_step_median"] for r in t)
        orss, trss = statistics.median(r["peak_rss_mb"] for r in o), statistics.median(r["peak_rss_mb"] for r in t)
        print(f"\n{'peer':<8} {'s/update':>9} {'RSS MB':>8}\n{'rlhfkit':<8} {os_:>9.2f} {orss:>8.0f}\n"
              f"{'trl':<8} {ts:>9.2f} {trss:>8.0f}\nspeed-up {ts / os_:.2f}x, RSS ratio {orss / trss:.2f}x",
              file=sys.stderr)


if __name__ == "__main__":
    main()
