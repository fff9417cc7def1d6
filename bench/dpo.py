"""DPO throughput and memory on the peer workload of ../shared/bench/README.md, printed like trl_bench.py.

usage:
  python bench/dpo.py [dpo-full] [dpo-lora] [--steps 12] [--trl] [--trl-python PY] [--repeat N]

Each workload runs in its own process (peak RSS is per process) and prints ONE JSON line:
  {"peer": "rlhfkit", "mode": ..., "pairs_per_sec": ..., "peak_rss_mb": ..., "sec_per_step_median": ..., ...}
With --trl, TRL's own harness (../shared/bench/trl_bench.py, run with --trl-python, a venv holding trl 1.16) runs
the same workload right after ours, alternating, and a table of ratios is printed at the end (stderr).

The workload (identical to the peer's): SmolLM2-135M-Instruct, the first 256 usable pairs of the HH-RLHF harmless
file (implicit prompt split at the last "Assistant:"; plain text, no chat template), prompt left-truncated to 256
tokens, prompt + response + EOS truncated keep-start to 384, 8 pairs per step in file order, AdamW lr 5e-7
constant, no warm-up, clip 1.0, sigmoid loss beta 0.1, bf16 autocast over fp32 weights, 12 steps, the first 2
excluded from timing. dpo-full: frozen reference copy (held in bf16); dpo-lora: r=16 alpha=32 on all
projections, reference = adapter disabled.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"
HH = Path(os.environ.get("HH_JSONL", SHARED / "data" / "hh-rlhf-harmless-1600.jsonl"))
N_PAIRS, BATCH, STEPS, WARMUP = 256, 8, 12, 2


def workload_file(path: Path) -> Path:
    """The first 256 usable pairs as explicit JSONL (the one line whose prompts differ is skipped, as TRL's
    harness does)."""
    from rlhfkit.data.formats import RecordError, normalize

    rows = []
    with open(HH) as fh:
        for n, line in enumerate(fh, 1):
            try:
                ex = normalize(json.loads(line), "implicit", n)
            except RecordError:
                continue
            rows.append({"prompt": ex.prompt, "chosen": ex.chosen.strip(), "rejected": ex.rejected.strip()})
            if len(rows) == N_PAIRS:
                break
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_ours(mode: str, steps: int, prefix_sharing: bool, release_memory: bool) -> dict:
    import resource

    import torch

    from rlhfkit.config import DPOConfig, build_config
    from rlhfkit.trainers.dpo import train_dpo
    from rlhfkit.trainers.loop import read_metrics

    tmp = Path(tempfile.mkdtemp(prefix="rlhfkit-bench-"))
    data = workload_file(tmp / "pairs.jsonl")
    cfg = build_config(
        DPOConfig, data=str(data), output=str(tmp / "out"), lora=(mode == "dpo-lora"), lora_r=16, lora_alpha=32,
        batch_size=BATCH, max_steps=steps, learning_rate=5e-7, lr_scheduler="constant", warmup_steps=0,
        max_length=384, max_prompt_length=256, beta=0.1, loss_type="sigmoid", precision="bf16",
        shuffle=False, group_by_length=False, use_chat_template=False, save_steps=0, seed=42,
        prefix_sharing=prefix_sharing, release_memory=release_memory, progress=False)
    t0 = time.perf_counter()
    train_dpo(cfg)
    total = time.perf_counter() - t0
    rows = [r for r in read_metrics(tmp / "out") if "train/loss" in r]
    secs = [r["perf/step_seconds"] for r in rows]
    timed = secs[WARMUP:]
    return {
        "peer": "rlhfkit", "mode": mode, "steps": len(rows), "warmup_steps_excluded": WARMUP,
        "sec_per_step_median": round(statistics.median(timed), 4),
        "sec_per_step_mean": round(statistics.mean(timed), 4),
        "pairs_per_sec": round(BATCH * len(timed) / sum(timed), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_loss": rows[-1]["train/loss"], "losses": [round(r["train/loss"], 6) for r in rows],
        "step_seconds": [round(s, 3) for s in secs],
        "tokens_per_step": [round(r["perf/tokens_per_sec"] * r["perf/step_seconds"]) for r in rows],
        "prefix_sharing": prefix_sharing, "release_memory": release_memory, "precision": "bf16 autocast (fp32 master weights)",
        "torch_threads": torch.get_num_threads(), "wall_seconds_incl_setup": round(total, 1),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_trl(mode: str, steps: int, python: str) -> dict:
    """TRL's harness on the same workload; it needs MODEL_DIR and DATA_FILE in its own format."""
    from rlhfkit.models.load import resolve_model

    tmp = Path(tempfile.mkdtemp(prefix="trl-bench-"))
    data = tmp / "hh.jsonl"
    with open(HH) as src, open(data, "w") as dst:
        subprocess.run([python, str(SHARED / "bench" / "extract_hh.py")], stdin=src, stdout=dst, check=True,
                       stderr=subprocess.DEVNULL)
    env = dict(os.environ, MODEL_DIR=resolve_model(None, quiet=True).path, DATA_FILE=str(data),
               OUT_DIR=str(tmp / "out"))
    res = subprocess.run([python, str(SHARED / "bench" / "trl_bench.py"), mode, "--steps", str(steps)],
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"TRL run failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modes", nargs="*", help="dpo-full and/or dpo-lora (default: both)")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--no-prefix-sharing", action="store_true")
    ap.add_argument("--no-release-memory", dest="release_memory", action="store_false",
                    help="skip the per-step malloc_trim")
    ap.add_argument("--trl", action="store_true", help="also run TRL's harness, alternating with ours")
    ap.add_argument("--trl-python", default=os.environ.get("TRL_PYTHON", "/tmp/trl-venv/bin/python"))
    ap.add_argument("--repeat", type=int, default=1, help="rounds (ours, TRL) per mode")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    args.modes = args.modes or ["dpo-full", "dpo-lora"]
    if set(args.modes) - {"dpo-full", "dpo-lora"}:
        ap.error(f"unknown workload(s) {sorted(set(args.modes) - {'dpo-full', 'dpo-lora'})}")
    if args._child:  # one workload in this process
        print(json.dumps(run_ours(args._child, args.steps, not args.no_prefix_sharing, args.release_memory)),
              flush=True)
        return

    results = []
    for mode in args.modes:
        for _ in range(args.repeat):
            cmd = [sys.executable, __file__, "--_child", mode, "--steps", str(args.steps)]
            if args.no_prefix_sharing:
                cmd.append("--no-prefix-sharing")
            if not args.release_memory:
                cmd.append("--no-release-memory")
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
            ours = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(ours), flush=True)
            results.append(ours)
            if args.trl:
                trl = run_trl(mode, args.steps, args.trl_python)
                print(json.dumps(trl), flush=True)
                results.append(trl)
    if args.trl:
        print(f"\n{'mode':<10} {'rlhfkit pairs/s':>16} {'TRL pairs/s':>12} {'speed-up':>9} "
              f"{'rlhfkit RSS MB':>15} {'TRL RSS MB':>11} {'RSS ratio':>10}", file=sys.stderr)
        for mode in args.modes:
            o = [r for r in results if r["mode"] == mode and r["peer"] == "rlhfkit"]
            t = [r for r in results if r["mode"] == mode and r["peer"] == "trl"]
            op = statistics.median(r["pairs_per_sec"] for r in o)
            tp = statistics.median(r["pairs_per_sec"] for r in t)
            orss = statistics.median(r["peak_rss_mb"] for r in o)
            trss = statistics.median(r["peak_rss_mb"] for r in t)
            print(f"{mode:<10} {op:>16.3f} {tp:>12.3f} {op / tp:>8.2f}x {orss:>15.0f} {trss:>11.0f} "
                  f"{orss / trss:>9.2f}x", file=sys.stderr)


if __name__ == "__main__":
    main()
