"""Where one PPO update's time and memory go, on the `ppo` peer workload (see bench/ppo.py).

usage:
  python bench/ppo_phases.py --reward-model DIR [--steps 3] [--lora] [--precision fp32]
      [--activation-checkpointing selective|full|off]

Wraps the trainer's pieces (sampling, reference/value/reward forwards, policy and value training forwards,
backward, optimizer step, heap trim) with timers, samples the process RSS every 10 ms, and prints one JSON object:
seconds per phase summed over the run, the peak RSS seen while each phase ran ("other" = code between them), and
ru_maxrss. The policy-forward timer also counts the reference forward (same function): subtract ref_fwd.
"""
from __future__ import annotations

import argparse
import collections
import json
import resource
import tempfile
import threading
import time
from pathlib import Path

from ppo import workload_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reward-model", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--precision", default="fp32", choices=["bf16", "fp32"])
    ap.add_argument("--activation-checkpointing", default="selective", choices=["lean", "selective", "full", "off"])
    ap.add_argument("--micro-batches", type=int, default=1, help="gradient_accumulation_steps per PPO minibatch")
    args = ap.parse_args()

    import accelerate

    from rlhfkit.trainers import ppo, run

    phase = ["other"]
    peak: dict = collections.defaultdict(float)
    seconds: dict = collections.defaultdict(float)

    def sample_rss() -> None:
        while True:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * resource.getpagesize() / 2 ** 20
            peak[phase[0]] = max(peak[phase[0]], rss)
            time.sleep(0.01)

    def timed(name, fn):
        def wrapper(*a, **kw):
            prev, phase[0] = phase[0], name
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                seconds[name] += time.perf_counter() - t0
                phase[0] = prev
        return wrapper

    threading.Thread(target=sample_rss, daemon=True).start()
    ppo.sample = timed("generate", ppo.sample)
    ppo.reference_logprobs = timed("ref_fwd", ppo.reference_logprobs)
    ppo.rollout_scores = timed("reward_fwd", ppo.rollout_scores)
    ppo.completion_logprobs = timed("policy_fwd", ppo.completion_logprobs)
    ppo.packed_values = timed("value_fwd", ppo.packed_values)
    ppo.apply_update = timed("optimizer", ppo.apply_update)
    accelerate.Accelerator.backward = timed("backward", accelerate.Accelerator.backward)
    ppo.trim_freed_memory = timed("trim", ppo.trim_freed_memory)

    tmp = Path(tempfile.mkdtemp(prefix="rlhfkit-bench-ppo-phases-"))
    cfg = workload_config(tmp, args.steps, str(Path(args.reward_model).resolve()), args.lora, args.precision,
                          activation_checkpointing=args.activation_checkpointing,
                          gradient_accumulation_steps=args.micro_batches)
    t0 = time.perf_counter()
    ppo.train_ppo(cfg)
    rows = [r for r in run.read_metrics(tmp / "out") if "perf/step_seconds" in r]
    print(json.dumps({
        "lora": args.lora, "precision": args.precision, "activation_checkpointing": args.activation_checkpointing,
        "micro_batches": args.micro_batches,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "step_seconds": [round(r["perf/step_seconds"], 1) for r in rows],
        "seconds_by_phase": {k: round(v, 1) for k, v in seconds.items()},
        "peak_rss_mb_by_phase": {k: round(v) for k, v in peak.items()},
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=1))


if __name__ == "__main__":
    main()
