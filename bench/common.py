"""Shared by the side-by-side benchmarks: the peer workload's data file, TRL's harness, the ratio table."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"
HH = Path(os.environ.get("HH_JSONL", SHARED / "data" / "hh-rlhf-harmless-1600.jsonl"))
N_PAIRS, BATCH, STEPS, WARMUP = 256, 8, 12, 2
TRL_PYTHON = os.environ.get("TRL_PYTHON", "/tmp/trl-venv/bin/python")


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


def run_trl(mode: str, steps: int, python: str, extra_env: dict | None = None,
            extra_args: list[str] | None = None) -> dict:
    """TRL's harness on the same workload; it needs MODEL_DIR and DATA_FILE in its own format."""
    from rlhfkit.models.load import resolve_model

    tmp = Path(tempfile.mkdtemp(prefix="trl-bench-"))
    data = tmp / "hh.jsonl"
    with open(HH) as src, open(data, "w") as dst:
        subprocess.run([python, str(SHARED / "bench" / "extract_hh.py")], stdin=src, stdout=dst, check=True,
                       stderr=subprocess.DEVNULL)
    env = dict(os.environ, MODEL_DIR=resolve_model(None, quiet=True).path, DATA_FILE=str(data),
               OUT_DIR=str(tmp / "out"), **(extra_env or {}))
    res = subprocess.run([python, str(SHARED / "bench" / "trl_bench.py"), mode, "--steps", str(steps),
                          *(extra_args or [])],
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"TRL run failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def summary(mode: str, out: Path, total_seconds: float) -> dict:
    """Our run's numbers in the peer harness's JSON shape, from the run's metrics.jsonl (first WARMUP steps
    excluded from timing, as TRL's harness does)."""
    import platform
    import resource
    import time

    import torch

    from rlhfkit.trainers.run import read_metrics

    rows = [r for r in read_metrics(out) if "train/loss" in r]
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
        "precision": "bf16 autocast (fp32 master weights)", "torch_threads": torch.get_num_threads(),
        "wall_seconds_incl_setup": round(total_seconds, 1),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def ratio_table(results: list[dict], modes: list[str], unit: str = "pairs_per_sec") -> None:
    """Medians per mode and peer, and our speed-up and RSS ratio against TRL (stderr)."""
    print(f"\n{'mode':<10} {'rlhfkit ' + unit:>22} {'TRL':>10} {'speed-up':>9} "
          f"{'rlhfkit RSS MB':>15} {'TRL RSS MB':>11} {'RSS ratio':>10}", file=sys.stderr)
    for mode in modes:
        o = [r for r in results if r["mode"] == mode and r["peer"] == "rlhfkit"]
        t = [r for r in results if r["mode"] == mode and r["peer"] == "trl"]
        if not o or not t:
            continue
        op = statistics.median(r[unit] for r in o)
        tp = statistics.median(r[unit] for r in t)
        orss = statistics.median(r["peak_rss_mb"] for r in o)
        trss = statistics.median(r["peak_rss_mb"] for r in t)
        print(f"{mode:<10} {op:>22.3f} {tp:>10.3f} {op / tp:>8.2f}x {orss:>15.0f} {trss:>11.0f} "
              f"{orss / trss:>9.2f}x", file=sys.stderr)


def run_child(script: str, args: list[str]) -> dict:
    """One workload in a fresh process (peak RSS is per process); its last stdout line is the JSON result."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
