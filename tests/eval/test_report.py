"""`rlhfkit report`: fixture run folders written by hand -> one self-contained HTML page, checked by parsing it,
decoding its images, and loading it in a real headless Chromium."""
from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rlhfkit.cli import main
from rlhfkit.errors import RlhfkitError
from rlhfkit.eval.report import expand, load_run, make_plots, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DPO_PLOTS = ["train/loss", "eval/loss", "rewards/accuracies", "eval/rewards/accuracies", "rewards/margins",
             "eval/rewards/margins"]
PPO_PLOTS = ["objective/scores", "objective/kl", "objective/entropy", "policy/clipfrac_avg", "response/length_mean",
             "val/eos_rate", "loss/policy_avg", "loss/value_avg"]
NASTY_PROMPT = '<script>alert("x")</script> & <b>bold</b> \'quoted\''
NASTY_POLICY = '</div><img src=x onerror="alert(1)"> A & B'


# ----------------------------------------------------------------------------------------------
# fixtures: the files the trainers and `rlhfkit eval` write, by hand
# ----------------------------------------------------------------------------------------------
def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_dpo_run(folder: Path, steps: int = 5, shift: float = 0.0, with_eval: bool = True) -> Path:
    folder.mkdir(parents=True)
    rows = [{"step": s, "train/loss": 0.69 - 0.05 * s + shift, "rewards/accuracies": min(1.0, 0.5 + 0.1 * s),
             "rewards/margins": 0.02 * s, "rewards/chosen": 0.01 * s, "rewards/rejected": -0.01 * s,
             "grad_norm": 1.0, "learning_rate": 5e-5, "perf/step_seconds": 2.0} for s in range(1, steps + 1)]
    rows[1]["train/loss"] = None  # a skipped NaN step is logged as null: a gap, not an error
    if with_eval:
        rows.append({"step": steps, "eval/loss": 0.6, "eval/rewards/accuracies": 0.7, "eval/rewards/margins": 0.1})
    write_jsonl(folder / "metrics.jsonl", rows)
    (folder / "config.yaml").write_text("model: tiny/sft-model\ndata: prefs.jsonl\nlora: true\nlora_r: 8\n"
                                        "learning_rate: 5.0e-05\nbatch_size: 8\nloss_type: sigmoid\nbeta: 0.1\n"
                                        "label_smoothing: 0.0\nseed: 42\n")
    return folder


def make_ppo_run(folder: Path, steps: int = 4) -> Path:
    folder.mkdir(parents=True)
    write_jsonl(folder / "metrics.jsonl", [
        {"step": s, "objective/scores": 0.1 * s, "objective/kl": 0.05 * s, "objective/entropy": 60.0 - s,
         "policy/clipfrac_avg": 0.1 / s, "response/length_mean": 40.0 + s, "val/eos_rate": 0.25,
         "loss/policy_avg": -0.03, "loss/value_avg": 0.01 / s, "kl_coef": 0.05} for s in range(1, steps + 1)])
    (folder / "config.yaml").write_text("model: null\ndata: prompts.jsonl\nlora: false\nreward_model: runs/rm/final\n"
                                        "kl_coef: 0.05\ncliprange: 0.2\nmax_new_tokens: 48\n")
    write_jsonl(folder / "samples.jsonl", [
        {"step": s, "prompt": f"prompt {s}", "response": f"response at step {s}", "score": 0.5, "ended_with_eos": True}
        for s in (1, steps)])
    return folder


def make_eval(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(json.dumps({
        "win_rate": 0.625, "ci95": [0.31, 0.86], "wins": 5, "ties": 0, "losses": 3, "n": 8, "score_policy": 0.61,
        "score_baseline": 0.48, "kl": 1.25, "length_policy": 31.0, "length_baseline": 35.5, "eos_policy": 0.75,
        "eos_baseline": 0.5, "policy": "runs/dpo/final", "baseline": "tiny/sft-model", "judge": "runs/rm/final",
        "prompts": "test.jsonl"}))
    write_jsonl(folder / "samples.jsonl", [
        {"prompt": NASTY_PROMPT, "policy": NASTY_POLICY, "baseline": "plain baseline answer", "score_policy": 0.9,
         "score_baseline": 0.2, "winner": "policy", "length_policy": 12, "length_baseline": 3},
        {"prompt": "second prompt", "policy": "short", "baseline": "a longer answer", "score_policy": 0.3,
         "score_baseline": 0.4, "winner": "baseline", "length_policy": 1, "length_baseline": 3}])
    return folder


class Page(HTMLParser):
    """What the checks need from the page: tags seen, <img> attributes, the text, URLs in attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[str] = []
        self.imgs: list[dict] = []
        self.text: list[str] = []
        self.urls: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        self.urls += [v for k, v in attrs if k in ("src", "href", "action", "srcset") and v]

    def handle_data(self, data):
        self.text.append(data)


def decode_png(uri: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data[:8] == PNG_MAGIC
    return data


# ----------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------
def test_report_has_one_embedded_png_per_logged_metric(tmp_path):
    import matplotlib.image

    dpo, ppo = make_dpo_run(tmp_path / "dpo"), make_ppo_run(tmp_path / "ppo")
    ev = make_eval(tmp_path / "eval-dpo")
    out = write_report([dpo, ppo, ev], tmp_path / "out" / "page.html")
    assert out == tmp_path / "out" / "page.html"
    text = out.read_text(encoding="utf-8")
    page = Page(text)

    # one <img> per metric some run logged, each a PNG data URI that decodes (640x360: 6.4 x 3.6 in at 100 dpi)
    expected = DPO_PLOTS + PPO_PLOTS
    assert len(page.imgs) == len(expected)
    files = out.parent / "page_files"
    names = sorted(p.name for p in files.iterdir())
    assert names == sorted(k.replace("/", "_") + ".png" for k in expected)
    for img in page.imgs:
        data = decode_png(img["src"])
        pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert pixels.shape[:2] == (360, 640)
        assert pixels.std() > 0.05  # lines and text, not a blank canvas
        # the same bytes are on disk next to the page
        assert any((files / n).read_bytes() == data for n in names)
    # page order follows the catalogue: DPO/shared metrics first, PPO after
    alts = [img["alt"] for img in page.imgs]
    assert "(train/loss)" in alts[0] and "(loss/value_avg)" in alts[-1]

    # self-contained: no script, nothing referenced outside the file
    assert "script" not in page.tags and "link" not in page.tags
    assert all(u.startswith("data:") for u in page.urls), [u[:40] for u in page.urls if not u.startswith("data:")]
    assert "://" not in re.sub(r'src="data:[^"]*"', "", text)

    body = "".join(page.text)
    # header: method, model (a null model is the default one), key config, final metrics; evaluation table
    assert "DPO" in body and "PPO" in body and "tiny/sft-model" in body and "(default)" in body
    assert "beta=0.1" in body and "kl_coef=0.05" in body and "label_smoothing" not in body  # 0.0: left out
    assert "0.625" in body and "0.310 - 0.860" in body and "runs/rm/final" in body
    # PPO's training samples of the last logged step only
    assert "response at step 4" in body and "response at step 1" not in body


def test_runs_sharing_a_metric_share_the_axes(tmp_path):
    a = make_dpo_run(tmp_path / "a" / "dpo", steps=6)
    b = make_dpo_run(tmp_path / "b" / "dpo", steps=4, shift=0.1, with_eval=False)
    runs_paths, evals, _ = expand([a, b])
    assert evals == []
    runs = [load_run(p, n) for p, n in zip(runs_paths, ["a/dpo", "b/dpo"])]
    plots = {p.key: p for p in make_plots(runs)}
    assert plots["train/loss"].labels == ["a/dpo", "b/dpo"]  # read back from the figure's legend
    assert plots["eval/loss"].labels == ["a/dpo"]              # only one run logged it
    assert set(plots) == set(DPO_PLOTS)
    # the null (skipped) step is left out, the others kept in order
    assert [s for s, _ in runs[0].metrics["train/loss"]] == [1, 3, 4, 5, 6]

    # through write_report: same folder names get their parent folder to tell them apart; one img per metric
    page = Page(write_report([a, b], tmp_path / "r.html").read_text())
    assert len(page.imgs) == len(DPO_PLOTS)
    loss = next(i for i in page.imgs if "(train/loss)" in i["alt"])
    assert loss["alt"].endswith("a/dpo, b/dpo")


def test_user_text_is_escaped(tmp_path):
    out = write_report([make_eval(tmp_path / "ev")])
    assert out == tmp_path / "ev" / "report.html"  # default: inside the first folder
    assert not (tmp_path / "ev" / "report_files").exists()  # no training run: no plots
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert "script" not in page.tags and page.imgs == [] and "b" in page.tags  # <b> from the page itself only
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "&lt;/div&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt; A &amp; B" in text
    body = "".join(page.text)
    assert NASTY_PROMPT in body and NASTY_POLICY in body  # shown as the text it is
    assert "winner: policy" in body and "winner: baseline" in body


def test_parent_folder_is_expanded_and_summary_shown(tmp_path):
    demo = tmp_path / "demo"
    make_dpo_run(demo / "dpo")
    make_eval(demo / "eval-dpo")
    make_ppo_run(demo / "ppo")
    (demo / "data").mkdir()  # not a run: skipped
    (demo / "data" / "train.jsonl").write_text("{}\n")
    (demo / "summary.json").write_text(json.dumps({"method": "dpo", "methods": {"dpo": {"win_rate": 0.625}}}))
    runs, evals, summaries = expand([demo])
    assert [p.name for p in runs] == ["dpo", "ppo"] and [p.name for p in evals] == ["eval-dpo"]
    assert summaries == [demo / "summary.json"]

    assert main(["report", str(demo)]) == 0
    body = "".join(Page((demo / "report.html").read_text()).text)
    assert "methods.dpo.win_rate" in body
    assert len(list((demo / "report_files").glob("*.png"))) == len(DPO_PLOTS) + len(PPO_PLOTS)


def test_eval_folder_inside_a_run_comes_along(tmp_path):
    run = make_dpo_run(tmp_path / "dpo")
    make_eval(run / "eval")  # `rlhfkit eval --policy RUN` writes RUN/eval by default
    runs, evals, _ = expand([run, run / "eval"])  # named twice: read once
    assert runs == [run] and evals == [run / "eval"]


def test_bad_folders_exit_2_with_a_clear_message(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "not a training run" in err and "Traceback" not in err

    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err

    half = tmp_path / "half"
    half.mkdir()
    (half / "eval.json").write_text("{}")
    assert main(["report", str(half)]) == 2
    assert "no samples.jsonl" in capsys.readouterr().err

    run = make_dpo_run(tmp_path / "dpo")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "train/loss": 0.5\n')  # cut short (a crash mid-write)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'metrics.jsonl'}:7: not valid JSON" in err and "Traceback" not in err
    with pytest.raises(RlhfkitError, match=r"metrics.jsonl:1: expected an integer 'step'"):
        (run / "metrics.jsonl").write_text('{"train/loss": 0.5}\n')
        write_report([run])


def test_import_stays_light():
    # matplotlib (and torch) load only when a report is drawn
    code = "import sys, rlhfkit.eval.report; print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------------------------
# a real browser: Debian's chromium, driven by playwright (never `playwright install`: it downloads)
# ----------------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_report_renders_in_headless_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: this test needs Debian's chromium (`apt-get install -y chromium`; "
                    "`make test` installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[dev]' (do not run `playwright install`)")
    import matplotlib.image

    out = write_report([make_dpo_run(tmp_path / "dpo"), make_ppo_run(tmp_path / "ppo"), make_eval(tmp_path / "ev")],
                       tmp_path / "report.html")
    shot = tmp_path / "screenshot.png"
    problems: list[str] = []
    requests: list[str] = []
    t0 = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map(i => ({complete: i.complete, "
                                   "w: i.naturalWidth, h: i.naturalHeight, shown: i.getBoundingClientRect().width}))")
            title = page.title()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    seconds = time.perf_counter() - t0
    assert problems == []
    assert [u for u in requests if not u.startswith("data:")] == [out.as_uri()]  # nothing fetched but the page
    assert len(images) == len(DPO_PLOTS) + len(PPO_PLOTS)
    assert all(i["complete"] and i["w"] == 640 and i["h"] == 360 and i["shown"] > 300 for i in images), images
    assert title.startswith("rlhfkit report")

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[1] == 1280 and pixels.shape[0] > 2000  # the whole page: plots, tables, samples
    assert pixels.std() > 0.05 and len({tuple(p) for p in pixels[::7, ::7, :3].reshape(-1, 3).tolist()}) > 50
    assert seconds < 60, f"the browser took {seconds:.1f} s"
