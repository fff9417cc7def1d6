"""`rlhfkit report`: one self-contained HTML page for training runs and evaluations.

The page holds plots of the training metrics (PNG, embedded as base64 data URIs and also written to
`<output stem>_files/` beside it), a header per run (method, model, key config, final metrics), the evaluation
table (win rate, KL, score, length, EOS rate) and side-by-side samples (prompt, baseline, policy, scores,
winner). It needs no JavaScript and loads nothing from outside the file (a Content-Security-Policy says so).

Folders it reads (see docs/report.md):
  training run       metrics.jsonl (+ config.yaml, + samples.jsonl for PPO); eval folders directly inside it too
  evaluation folder  eval.json + samples.jsonl, as written by `rlhfkit eval`
  parent folder      neither of those: its direct subfolders that are (e.g. a `rlhfkit demo` output)
Any of them may hold a summary.json (the demo's), shown as a table.

matplotlib is imported inside the plotting function only: `import rlhfkit` stays fast.
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from rlhfkit.errors import RlhfkitError
from rlhfkit.files import atomic_write_text

# metric key -> plot title, in page order. A plot is drawn when at least one run logged the key; runs that share
# a key are drawn on the same axes (one line each).
PLOTS: dict[str, str] = {
    "train/loss": "training loss",
    "eval/loss": "eval loss",
    # DPO (implicit rewards beta * log pi/pi_ref)
    "rewards/accuracies": "DPO reward accuracy (train)",
    "eval/rewards/accuracies": "DPO reward accuracy (eval)",
    "rewards/margins": "DPO reward margin (train)",
    "eval/rewards/margins": "DPO reward margin (eval)",
    # reward model (Bradley-Terry)
    "train/accuracy": "reward-model accuracy (train)",
    "eval/accuracy": "reward-model accuracy (eval)",
    "train/margin": "reward-model margin r(chosen) - r(rejected) (train)",
    "eval/margin": "reward-model margin r(chosen) - r(rejected) (eval)",
    # PPO (TRL's names)
    "objective/scores": "PPO reward-model score",
    "objective/kl": "PPO KL to the reference (nats per response)",
    "objective/entropy": "PPO policy entropy (nats per response)",
    "policy/clipfrac_avg": "PPO fraction of clipped policy ratios",
    "response/length_mean": "PPO response length (tokens)",
    "val/eos_rate": "PPO responses ending with EOS",
    "loss/policy_avg": "PPO policy loss",
    "loss/value_avg": "PPO value loss",
}

# config keys shown in a run's header, when present and set (method-specific ones come first in the config)
KEY_CONFIG = ("data", "loss_type", "beta", "label_smoothing", "reward_model", "reward_fn", "kl_coef", "cliprange",
              "num_ppo_epochs", "max_new_tokens", "temperature", "center_rewards_coefficient", "packing", "lora",
              "lora_r", "learning_rate", "batch_size", "gradient_accumulation_steps", "num_epochs", "max_steps",
              "max_length", "precision", "seed")

PathLike = Union[str, Path]


@dataclass
class TrainingRun:
    name: str
    path: Path
    method: str                                     # "DPO", "PPO", "reward model", "SFT" (or what config says)
    config: dict
    metrics: dict[str, list[tuple[int, float]]]     # key -> [(step, value)], non-finite values dropped
    last_step: int
    samples: list[dict] = field(default_factory=list)   # PPO training samples (samples.jsonl), if any


@dataclass
class EvalResult:
    name: str
    path: Path
    report: dict                                    # eval.json
    samples: list[dict]                             # samples.jsonl


@dataclass
class Plot:
    key: str
    title: str
    filename: str
    labels: list[str]                               # the legend's labels, read back from the figure
    png: bytes


# ----------------------------------------------------------------------------------------------
# reading folders
# ----------------------------------------------------------------------------------------------
def _is_run(p: Path) -> bool:
    return (p / "metrics.jsonl").is_file()


def _is_eval(p: Path) -> bool:
    return (p / "eval.json").is_file() and (p / "samples.jsonl").is_file()


def _subdirs(p: Path) -> list[Path]:
    return sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))


def expand(run_dirs: Sequence[PathLike]) -> tuple[list[Path], list[Path], list[Path]]:
    """(training runs, evaluation folders, summary.json files) named by `run_dirs`, in the order given.

    A training run brings the evaluation folders directly inside it; a folder that is neither is a parent whose
    direct subfolders are read. Raises RlhfkitError for a folder that gives nothing."""
    runs: list[Path] = []
    evals: list[Path] = []
    summaries: list[Path] = []
    seen: set[Path] = set()

    def add(kind: list[Path], p: Path) -> None:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            kind.append(p)

    for d in map(Path, run_dirs):
        if not d.is_dir():
            raise RlhfkitError(f"{d}: no such folder")
        if (d / "summary.json").is_file():
            summaries.append(d / "summary.json")
        if _is_run(d) or _is_eval(d):
            if _is_run(d):
                add(runs, d)
                for c in _subdirs(d):
                    if _is_eval(c):
                        add(evals, c)
            if _is_eval(d):
                add(evals, d)
            continue
        found = [c for c in _subdirs(d) if _is_run(c) or _is_eval(c)]
        if not found:
            hint = " (it has eval.json but no samples.jsonl)" if (d / "eval.json").is_file() else ""
            raise RlhfkitError(f"{d}: not a training run (no metrics.jsonl), an evaluation folder (eval.json and "
                               f"samples.jsonl) or a folder of those{hint}")
        for c in found:
            if _is_run(c):
                add(runs, c)
            if _is_eval(c):
                add(evals, c)
    return runs, evals, summaries


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line; a bad line is an error naming file:line."""
    from rlhfkit.data.io import read_json_objects

    return read_json_objects(path)


def _read_json(path: Path) -> dict:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RlhfkitError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(rec, dict):
        raise RlhfkitError(f"{path}: expected a JSON object, got {type(rec).__name__}")
    return rec


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def read_metrics(path: Path) -> tuple[dict[str, list[tuple[int, float]]], int]:
    """metrics.jsonl -> ({key: [(step, value)]}, last step). Nulls (skipped NaN steps) and text are left out."""
    series: dict[str, list[tuple[int, float]]] = {}
    last = 0
    for n, rec in _read_jsonl(path):
        step = rec.get("step")
        if _number(step) is None or step != int(step):
            raise RlhfkitError(f"{path}:{n}: expected an integer 'step', got {json.dumps(step)}")
        step = int(step)
        last = max(last, step)
        for k, v in rec.items():
            x = _number(v)
            if k != "step" and x is not None:
                series.setdefault(k, []).append((step, x))
    return series, last


def guess_method(config: dict, metrics: dict) -> str:
    """The training method from config.yaml's fields (its `method` key when there is one), else the metric names."""
    if isinstance(config.get("method"), str):
        return config["method"]
    if "reward_model" in config or "cliprange" in config or "objective/kl" in metrics:
        return "PPO"
    if "loss_type" in config or "rewards/accuracies" in metrics:
        loss = config.get("loss_type")
        return "DPO" if loss in (None, "sigmoid") else f"DPO ({loss})"
    if "center_rewards_coefficient" in config or "train/accuracy" in metrics:
        return "reward model"
    return "SFT"


def load_run(path: Path, name: str) -> TrainingRun:
    config: dict = {}
    if (path / "config.yaml").is_file():
        import yaml

        try:
            config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise RlhfkitError(f"{path / 'config.yaml'}: not valid YAML ({e})") from None
        if not isinstance(config, dict):
            raise RlhfkitError(f"{path / 'config.yaml'}: expected a mapping of config keys")
    metrics, last = read_metrics(path / "metrics.jsonl")
    samples: list[dict] = []
    if (path / "samples.jsonl").is_file():  # PPO: a few (prompt, response, score) rows every sample_steps
        rows = [r for _, r in _read_jsonl(path / "samples.jsonl")]
        final = max((r.get("step", 0) for r in rows if isinstance(r.get("step"), int)), default=None)
        samples = [r for r in rows if r.get("step") == final] if final is not None else rows[-4:]
    return TrainingRun(name, path, guess_method(config, metrics), config, metrics, last, samples)


def load_eval(path: Path, name: str) -> EvalResult:
    return EvalResult(name, path, _read_json(path / "eval.json"),
                      [r for _, r in _read_jsonl(path / "samples.jsonl")])


def _names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the folder name, with as many parent folders as it takes to tell them apart."""
    parts = [p.resolve().parts for p in paths]
    for depth in range(1, max((len(x) for x in parts), default=1) + 1):
        names = ["/".join(x[-depth:]) for x in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------
def draw(title: str, key: str, lines: Sequence[tuple[str, Sequence[int], Sequence[float]]]) -> tuple[bytes, list[str]]:
    """One PNG with a line per (label, steps, values); returns (png bytes, the legend's labels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # the Agg backend, no pyplot global state
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.6), dpi=100)  # 640 x 360 px
    FigureCanvasAgg(fig)
    # fixed margins: half the time of a constrained layout, and there are many plots to draw
    fig.subplots_adjust(left=0.11, right=0.98, top=0.91, bottom=0.13)
    ax = fig.add_subplot()
    for label, xs, ys in lines:
        # markers when points are few: a metric logged once (a final eval) is still visible
        ax.plot(xs, ys, label=label, linewidth=1.6, marker="o" if len(xs) <= 30 else None, markersize=3.5)
    ax.set_title(f"{title}  ({key})", fontsize=10)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=8, loc="best")
    labels = [t.get_text() for t in legend.get_texts()]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue(), labels


def make_plots(runs: Sequence[TrainingRun]) -> list[Plot]:
    """One plot per known metric that any run logged; the runs sharing it are lines on the same axes."""
    plots = []
    for key, title in PLOTS.items():
        lines = [(r.name, [s for s, _ in r.metrics[key]], [v for _, v in r.metrics[key]])
                 for r in runs if r.metrics.get(key)]
        if lines:
            png, labels = draw(title, key, lines)
            plots.append(Plot(key, title, key.replace("/", "_") + ".png", labels, png))
    return plots


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1em; color: #1f2328; background: #fff; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.8em; }
.muted { color: #59636e; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1em; }
figure { margin: 0; border: 1px solid #d0d7de; border-radius: 6px; padding: 0.4em; }
figure img { display: block; width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #59636e; text-align: center; }
.sample { border: 1px solid #d0d7de; border-radius: 6px; margin: 1em 0; padding: 0.6em 0.8em; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 0.8em; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, Menlo, Consolas, monospace;
        font-size: 0.85em; background: #f6f8fa; border-radius: 4px; padding: 0.5em; margin: 0.2em 0; }
.won { outline: 2px solid #1a7f37; }
.badge { font-size: 0.8em; padding: 0.05em 0.5em; border-radius: 1em; background: #eaeef2; }
.badge.policy { background: #dafbe1; } .badge.baseline { background: #ffebe9; }
"""

# the page may load nothing: images are data URIs, the style is inline, there is no script
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


class Raw(str):
    """HTML already escaped (a table cell built from escaped pieces)."""


def fmt(v: Any) -> str:
    """A value for a table cell (escaped): 4 significant digits for floats, '-' for missing."""
    if isinstance(v, Raw):
        return v
    if v is None:
        return "-"
    if isinstance(v, float):
        return esc(f"{v:.4g}") if math.isfinite(v) else esc(v)
    if isinstance(v, (dict, list)):
        return esc(json.dumps(v, ensure_ascii=False))
    return esc(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{fmt(c)}</td>' if isinstance(c, (int, float)) and
                                    not isinstance(c, bool) else f"<td>{fmt(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _model_name(config: dict) -> str:
    if config.get("model"):
        return str(config["model"])
    from rlhfkit.models.load import DEFAULT_MODEL  # a light import (no torch)

    return f"{DEFAULT_MODEL} (default)"


def _key_config(config: dict) -> str:
    """`key=value; ...` of the config keys worth a glance (escaped); unset, zero and default-ish ones left out."""
    skip = {"lora_r"} if not config.get("lora") else set()
    if config.get("gradient_accumulation_steps") == 1:
        skip.add("gradient_accumulation_steps")
    shown = [k for k in KEY_CONFIG if k not in skip and (config.get(k) not in (None, "", [], False, 0)
                                                         or (k == "lora" and k in config))]  # lora=False is news
    return "; ".join(f"{esc(k)}={fmt(config[k])}" for k in shown)


def _runs_html(runs: Sequence[TrainingRun]) -> str:
    if not runs:
        return ""
    rows = [[r.name, r.method, _model_name(r.config), r.last_step,
             Raw(_key_config(r.config)) if r.config else "(no config.yaml)", str(r.path)] for r in runs]
    out = ["<h2>Training runs</h2>", _table(["run", "method", "model", "steps", "key config", "folder"], rows)]
    # final metrics: one row per known metric, one column per run (the last logged value)
    keys = [k for k in PLOTS if any(r.metrics.get(k) for r in runs)]
    if keys:
        out.append("<h3>Final metrics (last logged value)</h3>")
        out.append(_table(["metric"] + [r.name for r in runs],
                          [[k] + [r.metrics[k][-1][1] if r.metrics.get(k) else None for r in runs] for k in keys]))
    return "\n".join(out)


def _plots_html(plots: Sequence[Plot], files_dir: str) -> str:
    if not plots:
        return ""
    figs = []
    for p in plots:
        uri = "data:image/png;base64," + base64.b64encode(p.png).decode("ascii")
        alt = f"{p.title} ({p.key}): {', '.join(p.labels)}"
        figs.append(f'<figure><img src="{uri}" alt="{esc(alt)}" width="640" height="360">'
                    f"<figcaption>{esc(p.key)} &middot; {esc(files_dir)}/{esc(p.filename)}</figcaption></figure>")
    return "<h2>Training metrics</h2>\n<div class=\"plots\">\n" + "\n".join(figs) + "\n</div>"


EVAL_COLUMNS = [("win rate", "win_rate"), ("95% CI", "ci95"), ("wins", "wins"), ("ties", "ties"),
                ("losses", "losses"), ("n", "n"), ("score policy", "score_policy"),
                ("score baseline", "score_baseline"), ("KL", "kl"), ("length policy", "length_policy"),
                ("length baseline", "length_baseline"), ("EOS policy", "eos_policy"),
                ("EOS baseline", "eos_baseline")]


def _evals_html(evals: Sequence[EvalResult], max_samples: int) -> str:
    if not evals:
        return ""
    rows = []
    for e in evals:
        r = dict(e.report)
        ci = r.get("ci95")
        if isinstance(ci, list) and len(ci) == 2 and all(_number(x) is not None for x in ci):
            r["ci95"] = f"{ci[0]:.3f} - {ci[1]:.3f}"
        rows.append([e.name] + [r.get(k) for _, k in EVAL_COLUMNS])
    out = ["<h2>Evaluation</h2>", _table(["evaluation"] + [h for h, _ in EVAL_COLUMNS], rows)]
    out.append(_table(["evaluation", "policy", "baseline", "judge", "prompts"],
                      [[e.name] + [e.report.get(k) for k in ("policy", "baseline", "judge", "prompts")]
                       for e in evals]))
    out.append("<h2>Samples: baseline and policy side by side</h2>")
    for e in evals:
        shown = e.samples[:max_samples]
        out.append(f"<h3>{esc(e.name)}</h3><p class=\"muted\">{len(shown)} of {len(e.samples)} "
                   f"(all in {esc(e.path / 'samples.jsonl')})</p>")
        for i, s in enumerate(shown, 1):
            winner = s.get("winner")
            badge = winner if winner in ("policy", "baseline", "tie") else "unknown"
            cols = []
            for side in ("baseline", "policy"):
                won = ' won' if winner == side else ""
                cols.append(f"<div><b>{side}</b> &middot; score {fmt(s.get('score_' + side))} &middot; "
                            f"length {fmt(s.get('length_' + side))}"
                            f"<div class=\"text{won}\">{esc(s.get(side, ''))}</div></div>")
            out.append(f'<div class="sample"><b>#{i} prompt</b> <span class="badge {badge}">winner: '
                       f'{esc(winner if winner is not None else "-")}</span>'
                       f'<div class="text">{esc(s.get("prompt", ""))}</div>'
                       f'<div class="pair">{"".join(cols)}</div></div>')
    return "\n".join(out)


def _training_samples_html(runs: Sequence[TrainingRun]) -> str:
    parts = []
    for r in runs:
        if r.samples:
            step = r.samples[0].get("step")
            parts.append(f"<h3>{esc(r.name)} (step {fmt(step)})</h3>" + _table(
                ["prompt", "response", "score", "ended with EOS"],
                [[s.get("prompt"), s.get("response"), s.get("score"), s.get("ended_with_eos")] for s in r.samples]))
    return "<h2>Training samples (latest)</h2>\n" + "\n".join(parts) if parts else ""


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            rows += _flatten(v, f"{prefix}{k}.")
        else:
            rows.append((f"{prefix}{k}", v))
    return rows


def _summaries_html(summaries: Sequence[Path]) -> str:
    out = []
    for p in summaries:
        out.append(f"<h2>Summary</h2><p class=\"muted\">{esc(p)}</p>" + _table(["key", "value"],
                                                                               _flatten(_read_json(p))))
    return "\n".join(out)


def render_html(runs: Sequence[TrainingRun], evals: Sequence[EvalResult], summaries: Sequence[Path],
                plots: Sequence[Plot], files_dir: str, max_samples: int = 12) -> str:
    title = "rlhfkit report: " + ", ".join(x.name for x in [*runs, *evals])
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = [f"<h1>rlhfkit report</h1><p class=\"muted\">{esc(now)} &middot; {len(runs)} training run(s), "
            f"{len(evals)} evaluation(s) &middot; plots also in {esc(files_dir)}/</p>",
            _summaries_html(summaries), _runs_html(runs), _plots_html(plots, files_dir),
            _evals_html(evals, max_samples), _training_samples_html(runs)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(b for b in body if b) + "\n</body>\n</html>\n")


# ----------------------------------------------------------------------------------------------
# the entry point
# ----------------------------------------------------------------------------------------------
def write_report(run_dirs: Sequence[PathLike], output: Optional[PathLike] = None, *, max_samples: int = 12) -> Path:
    """Write the HTML report for `run_dirs` (training runs, evaluation folders, or folders of them) to `output`
    (default: report.html in the first folder); the plots also go to `<output stem>_files/*.png`. Returns the
    HTML file's path. Raises RlhfkitError for a folder that is none of those or a malformed file (file:line)."""
    if not run_dirs:
        raise RlhfkitError("give at least one run folder")
    if max_samples < 0:
        raise RlhfkitError("the number of samples to show must be >= 0")
    run_paths, eval_paths, summaries = expand(run_dirs)
    names = _names([*run_paths, *eval_paths])
    runs = [load_run(p, n) for p, n in zip(run_paths, names)]
    evals = [load_eval(p, n) for p, n in zip(eval_paths, names[len(run_paths):])]
    out = Path(output) if output is not None else Path(run_dirs[0]) / "report.html"
    files = out.with_name(out.stem + "_files")
    plots = make_plots(runs)
    page = render_html(runs, evals, summaries, plots, files.name, max_samples=max_samples)

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if plots:
            files.mkdir(parents=True, exist_ok=True)
        for p in plots:
            (files / p.filename).write_bytes(p.png)
        atomic_write_text(out, page)         # written beside and renamed: a reader never sees half a page
    except OSError as e:
        raise RlhfkitError(f"cannot write the report: {e}") from None
    return out
