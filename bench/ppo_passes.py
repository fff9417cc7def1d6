"""Seconds per training forward+backward of the PPO policy or value model under each activation-checkpointing mode.

usage:
  python bench/ppo_passes.py --reward-model DIR [--which value|policy] [--modes lean,off,selective] [--repeat 5]

One synthetic rollout batch shaped like the `ppo` peer workload's (8 sequences: prompts of 60-190 random tokens,
responses of 20-48; 1,228 packed positions), bf16 autocast as in training. One copy of the model per mode, the
modes timed alternately; prints the median and every time per mode. The value model is DIR (a reward model), the
policy the default model. docs/performance.md (PPO, session 10) quotes its output.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reward-model", required=True)
    ap.add_argument("--which", default="value", choices=["value", "policy"])
    ap.add_argument("--modes", default="lean,off,selective")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from rlhfkit.models.forward import autocast, completion_logprobs
    from rlhfkit.models.heads import packed_values
    from rlhfkit.models.load import load_model, load_reward_model
    from rlhfkit.models.setup import disable_dropout, enable_activation_checkpointing, use_packed_attention
    from rlhfkit.trainers import ppo

    dev = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    plens, rlens = [120, 150, 80, 190, 60, 100, 90, 100], [48, 48, 30, 48, 48, 20, 48, 48]
    batch = ppo.pack_rollout([torch.randint(10, 40000, (n,), generator=g).tolist() for n in plens],
                             [torch.randint(10, 40000, (n,), generator=g).tolist() for n in rlens], 2, dev)
    models = {}
    for mode in args.modes.split(","):
        m = (load_reward_model(args.reward_model, quiet=True) if args.which == "value"
             else load_model(None, attn_implementation="sdpa", quiet=True))
        disable_dropout(m)
        enable_activation_checkpointing(m, mode)
        use_packed_attention(m)
        models[mode] = m.train()

    def step(m) -> float:
        t0 = time.perf_counter()
        with autocast(dev, "bf16", cache=False):
            out = packed_values(m, batch) if args.which == "value" else completion_logprobs(m, batch)
        out.float().sum().backward()
        m.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    for m in models.values():
        step(m)                                                     # warm-up
    times: dict = {mode: [] for mode in models}
    for _ in range(args.repeat):
        for mode, m in models.items():
            times[mode].append(step(m))
    print(f"{args.which}, {batch.num_tokens} packed positions")
    for mode, ts in times.items():
        print(f"{mode:<10} median {statistics.median(ts):.3f} s   " + " ".join(f"{t:.2f}" for t in ts))


if __name__ == "__main__":
    main()
