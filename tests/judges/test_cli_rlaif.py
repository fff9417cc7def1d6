"""`rlhfkit generate` and `rlhfkit label` end to end on tiny models and a local HTTP judge; bad input exits 2 with a
message, never a traceback."""
import json
import subprocess
import sys

import pytest
from chat_server import ChatServer, completion, prefer_longer
from tiny_rm import save_tiny_rm

from rlhfkit.cli import main
from rlhfkit.data.io import load_preferences
from rlhfkit.judges.agreement import cohen_kappa

PROMPTS = ["Customer: My order is wrong. What should I do?", "How do I reset my password?", "Where is my refund?"]


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("verb", ["generate", "label"])
def test_help_prints(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0 and "usage: rlhfkit" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------
def generate(model_dir, prompts, out, *extra):
    return main(["generate", "--model", str(model_dir), "--prompts", str(prompts), "--num-samples", "3",
                 "--output", str(out), "--max-new-tokens", "8", "--batch-size", "4", "--no-progress", *extra])


def test_generate_k_samples_per_prompt_seeded(tiny_model_dir, tmp_path, capsys):
    prompts = write_lines(tmp_path / "prompts.jsonl", [{"prompt": p} for p in PROMPTS])
    assert generate(tiny_model_dir, prompts, tmp_path / "a.jsonl", "--seed", "1", "--json") == 0
    counts = json.loads(capsys.readouterr().out)
    # a random tiny model at temperature 1 never repeats an 8-token sample: 3 distinct samples -> 3 pairs per prompt
    assert counts["prompts"] == 3 and counts["samples"] == 9 and counts["duplicate_samples"] == 0
    rows = lines(tmp_path / "a.jsonl")
    assert counts["pairs"] == len(rows) == 9
    assert [r["id"] for r in rows] == [f"{p}-{i}-{j}" for p in range(3) for i, j in ((0, 1), (0, 2), (1, 2))]
    for r in rows:
        assert r["prompt"] == PROMPTS[int(r["id"].split("-")[0])] and r["response_a"] != r["response_b"]
        assert r["generator"] == str(tiny_model_dir)
    # sample i of a prompt is the same text in every pair it is part of
    by_prompt = {}
    for r in rows:
        p, i, j = r["id"].split("-")
        for k, text in ((i, r["response_a"]), (j, r["response_b"])):
            assert by_prompt.setdefault((p, k), text) == text
    assert len(by_prompt) == 9  # K = 3 samples for each of the 3 prompts
    # same seed -> same file; another seed -> other samples
    assert generate(tiny_model_dir, prompts, tmp_path / "b.jsonl", "--seed", "1") == 0
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    assert generate(tiny_model_dir, prompts, tmp_path / "c.jsonl", "--seed", "2") == 0
    assert (tmp_path / "c.jsonl").read_bytes() != (tmp_path / "a.jsonl").read_bytes()


def test_generate_from_a_preference_file_adjacent_pairs(tiny_model_dir, tmp_path, capsys):
    prefs = write_lines(tmp_path / "prefs.jsonl", [{"prompt": p, "chosen": "yes", "rejected": "no"} for p in PROMPTS])
    out = tmp_path / "pairs.jsonl"
    assert generate(tiny_model_dir, prefs, out, "--pairing", "adjacent", "--num-samples", "4") == 0
    assert "candidate pairs from 3 prompts" in capsys.readouterr().out
    rows = lines(out)
    assert [r["id"] for r in rows] == [f"{p}-{i}-{j}" for p in range(3) for i, j in ((0, 1), (2, 3))]


# ----------------------------------------------------------------------------------------------
# label
# ----------------------------------------------------------------------------------------------
def candidates(tmp_path):
    rows = [{"id": f"c{i}", "prompt": PROMPTS[i % 3], "response_a": "Sorry! " * (i + 1), "response_b": "No. " * (4 - i)}
            for i in range(4)]
    return write_lines(tmp_path / "pairs.jsonl", rows)


@pytest.fixture(scope="module")
def rm_dir(tiny_tokenizer, tmp_path_factory):
    return save_tiny_rm(tmp_path_factory.mktemp("rm") / "final", tiny_tokenizer)


def test_label_with_rm_judge_then_rerun_from_cache(rm_dir, tmp_path, capsys):
    src, out = candidates(tmp_path), tmp_path / "prefs.jsonl"
    argv = ["label", "--judge", f"rm:{rm_dir}", "--input", str(src), "--output", str(out), "--no-progress"]
    assert main(argv + ["--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    for key in ("judge", "pairs", "labelled", "ties", "disagreements", "failures", "disagreement_rate", "coverage",
                "judge_calls", "cached_verdicts", "cache"):
        assert key in s
    # a reward model has no position bias: every pair is labelled, the orders never disagree
    assert s["pairs"] == s["labelled"] == 4 and s["disagreement_rate"] == 0.0 and s["judge_calls"] == 8
    assert json.loads((tmp_path / "prefs.summary.json").read_text()) == s
    assert (tmp_path / "prefs.judge-cache.jsonl").is_file()
    examples = load_preferences(out)  # what `rlhfkit dpo` / `rlhfkit rm train` read
    assert len(examples) == 4 and all(e.source == s["judge"] for e in examples)
    assert all(0.5 <= r["confidence"] <= 1 for r in lines(out))
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "labelled:           4 of 4 pairs" in text and "judge calls:        0 (8 verdicts from the cache" in text


def test_label_with_openai_judge_and_rubric(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RLHFKIT_TEST_KEY", "sk-local")
    src, out = candidates(tmp_path), tmp_path / "prefs.jsonl"
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Prefer the longer answer.\n")
    with ChatServer(prefer_longer) as server:
        code = main(["label", "--judge", "openai:tiny-judge", "--base-url", server.url, "--api-key-env",
                     "RLHFKIT_TEST_KEY", "--rubric", str(rubric), "--concurrency", "3", "--rate-limit", "500",
                     "--input", str(src), "--output", str(out), "--no-progress", "--json"])
    assert code == 0
    s = json.loads(capsys.readouterr().out)
    assert len(server.requests) == 8 and s["judge_calls"] == 8
    assert all("Prefer the longer answer." in r["json"]["messages"][0]["content"] for r in server.requests)
    assert all(r["headers"]["Authorization"] == "Bearer sk-local" for r in server.requests)
    # lengths: a = 7*(i+1), b = 4*(4-i) chars -> b wins for i = 0, a for i = 1..3; no ties, no disagreement
    rows = lines(out)
    assert [r["id"] for r in rows] == ["c0", "c1", "c2", "c3"]
    assert [r["chosen"] for r in rows] == ["No. " * 4, "Sorry! " * 2, "Sorry! " * 3, "Sorry! " * 4]
    assert all(r["source"] == s["judge"] and r["confidence"] is None for r in rows)
    assert s["judge"].startswith("openai:tiny-judge@127.0.0.1:") and len(load_preferences(out)) == 4


def test_label_with_hf_judge(tiny_model_dir, tmp_path, capsys):
    src, out = candidates(tmp_path), tmp_path / "prefs.jsonl"
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Prefer the helpful answer.")
    assert main(["label", "--judge", f"hf:{tiny_model_dir}", "--rubric", str(rubric), "--input", str(src),
                 "--output", str(out), "--no-progress", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["pairs"] == 4 and s["failures"] == 0 and s["labelled"] + s["ties"] + s["disagreements"] == 4
    assert len(lines(out)) == s["labelled"]


def test_agreement_with_human_labels(tmp_path, capsys):
    # chosen is the longer answer in 6 pairs and the shorter in 2: a judge preferring length agrees on 6 of 8
    rows = [{"prompt": f"q{i}", "chosen": "a helpful answer " + "x" * i, "rejected": f"no {i}"} for i in range(6)]
    rows += [{"prompt": f"r{i}", "chosen": "ok", "rejected": "a long rambling answer " + "x" * i} for i in range(2)]
    human = write_lines(tmp_path / "human.jsonl", rows)
    with ChatServer(prefer_longer) as server:
        assert main(["label", "--judge", "openai:j", "--base-url", server.url, "--agreement", str(human),
                     "--seed", "1", "--json", "--no-progress"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "kappa", "pairs", "labelled", "coverage"):
        assert key in r
    assert (r["pairs"], r["labelled"], r["coverage"]) == (8, 8, 1.0)
    assert r["accuracy"] == pytest.approx(6 / 8)
    t = r["table"]
    human_labels = ["a"] * (t["a"]["a"] + t["a"]["b"]) + ["b"] * (t["b"]["a"] + t["b"]["b"])
    judge_labels = ["a"] * t["a"]["a"] + ["b"] * t["a"]["b"] + ["a"] * t["b"]["a"] + ["b"] * t["b"]["b"]
    assert r["kappa"] == pytest.approx(cohen_kappa(human_labels, judge_labels))
    assert 0 < t["a"]["a"] + t["a"]["b"] < 8  # the seeded order shows chosen as a and as b
    with ChatServer(prefer_longer) as server:
        assert main(["label", "--judge", "openai:j", "--base-url", server.url, "--agreement", str(human),
                     "--seed", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "accuracy        75.0%" in text and "Cohen's kappa" in text and "coverage        100.0%" in text


# ----------------------------------------------------------------------------------------------
# bad input: exit 2 and a message, never a traceback
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["label", "--judge", "foo:bar", "--input", "x.jsonl", "--output", "y.jsonl"], "unknown judge 'foo:bar'"),
    (["label", "--judge", "gpt-4o", "--input", "x.jsonl", "--output", "y.jsonl"], "unknown judge 'gpt-4o'"),
    (["label", "--judge", "hf:", "--input", "x.jsonl", "--output", "y.jsonl"], "names no model"),
    (["label", "--judge", "rm:runs/rm", "--input", "MISSING.jsonl", "--output", "y.jsonl"], "no such file"),
    (["label", "--judge", "rm:runs/rm", "--input", "PAIRS"], "give --input PAIRS.jsonl and --output"),
    (["label", "--judge", "rm:runs/rm", "--agreement", "PAIRS", "--input", "PAIRS"], "takes no --input"),
    (["label", "--judge", "rm:MISSING_RM", "--input", "PAIRS", "--output", "OUT"], "no such folder"),
    (["label", "--judge", "openai:m", "--rubric", "MISSING.txt", "--input", "PAIRS", "--output", "OUT"],
     "--rubric MISSING.txt: no such file"),
    (["label", "--judge", "openai:m", "--base-url", "localhost:8000", "--input", "PAIRS", "--output", "OUT"],
     "not an http(s) URL"),
    (["label", "--judge", "rm:x", "--base-url", "http://127.0.0.1:1/v1", "--input", "PAIRS", "--output", "OUT"],
     "--base-url goes with an openai: judge"),
    (["label", "--judge", "openai:m", "--concurrency", "0", "--input", "PAIRS", "--output", "OUT"],
     "--concurrency must be >= 1"),
    (["label", "--judge", "openai:m", "--input", "BAD", "--output", "OUT"], "bad.jsonl:1: missing field 'response_a'"),
    (["label", "--judge", "openai:m", "--agreement", "BAD"], "bad.jsonl"),
    (["generate", "--prompts", "MISSING.jsonl", "--output", "OUT"], "no such file"),
    (["generate", "--prompts", "PAIRS", "--output", "OUT", "--num-samples", "1"], "--num-samples must be >= 2"),
])
def test_bad_input_exits_2_with_a_message(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    candidates(tmp_path)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "x"}) + "\n")
    sub = {"PAIRS": str(tmp_path / "pairs.jsonl"), "OUT": str(tmp_path / "out.jsonl"),
           "BAD": str(tmp_path / "bad.jsonl")}
    assert main([sub.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlhfkit: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_auth_failure_through_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    src = candidates(tmp_path)
    with ChatServer([{"status": 401, "body": {"error": {"message": "invalid key"}}}]) as server:
        code = main(["label", "--judge", "openai:m", "--base-url", server.url, "--input", str(src), "--output",
                     str(tmp_path / "out.jsonl"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "HTTP 401 (invalid key)" in err and "$OPENAI_API_KEY is not set" in err
    assert len(server.requests) <= 4  # no retries; the threads take no new pair once it failed
    assert not (tmp_path / "out.jsonl").exists()


def test_every_pair_failing_exits_1(tmp_path, capsys):
    src = candidates(tmp_path)
    with ChatServer([{"body": completion("I cannot decide.")}]) as server:
        code = main(["label", "--judge", "openai:m", "--base-url", server.url, "--input", str(src), "--output",
                     str(tmp_path / "out.jsonl"), "--no-progress"])
    out = capsys.readouterr()
    assert code == 1 and "every pair failed" in out.err and "0 of 4 pairs" in out.out


def test_no_traceback_from_the_real_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rlhfkit.cli", "label", "--judge", "ollama:llama3", "--input", "x",
                        "--output", "y"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "unknown judge 'ollama:llama3'" in r.stderr and "Traceback" not in r.stderr
