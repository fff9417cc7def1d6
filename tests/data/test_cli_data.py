"""`rlhfkit data ...` exit codes: 0 clean, 1 the data has errors, 2 usage/input errors (one line, no traceback)."""
import json

import pytest

from rlhfkit.cli import main
from rlhfkit.data import io

GOOD = [{"prompt": "Reset my password?", "chosen": "Settings > Security.", "rejected": "No."},
        {"prompt": "Where is my order?", "chosen": "Here is the tracking link.", "rejected": "Wait."}]


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def assert_one_line_error(capsys, text):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rlhfkit: error: ") and text in err
    assert "Traceback" not in err


def test_check_clean_file_exits_0(tmp_path, capsys):
    assert main(["data", "check", jsonl(tmp_path / "ok.jsonl", GOOD)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("2 records, 2 valid pairs, 0 blank lines, form: explicit")
    assert out.splitlines()[-1] == "OK: no errors"


def test_check_file_with_errors_exits_1(tmp_path, capsys):
    path = jsonl(tmp_path / "bad.jsonl", GOOD + [{"prompt": "p", "chosen": "c"}])
    assert main(["data", "check", path]) == 1
    out = capsys.readouterr().out
    assert f"{path}:3: rejected: missing field 'rejected'" in out and out.splitlines()[-1] == "1 error"
    assert main(["data", "check", path, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == [{"line": 3, "field": "rejected", "message": "missing field 'rejected'"}]
    assert (report["records"], report["format"], report["stats"]["valid_pairs"]) == (3, "explicit", 2)


def test_check_missing_file_exits_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope.jsonl")]) == 2
    assert_one_line_error(capsys, "no such file or folder")


def test_check_unknown_bundled_exits_2(capsys):
    assert main(["data", "check", "bundled:nope"]) == 2
    assert_one_line_error(capsys, "unknown bundled dataset 'nope'; bundled: bundled:support")


def test_check_model_without_max_length_exits_2(tmp_path, capsys):
    assert main(["data", "check", jsonl(tmp_path / "ok.jsonl", GOOD), "--model", "x"]) == 2
    assert_one_line_error(capsys, "--model and --max-length go together")


def test_bad_flag_is_an_argparse_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "check", "x.jsonl", "--format", "csv"])
    assert e.value.code == 2
    assert "invalid choice: 'csv'" in capsys.readouterr().err


def test_convert_and_split(tmp_path, capsys):
    src = jsonl(tmp_path / "ok.jsonl", GOOD * 20)
    out = str(tmp_path / "conv.jsonl")
    assert main(["data", "convert", src, "--to", "conversational", "-o", out]) == 0
    assert capsys.readouterr().out == f"wrote 40 pairs to {out} (conversational)\n"
    rows = [json.loads(line) for line in open(out)]
    assert rows[0]["prompt"] == [{"role": "user", "content": "Reset my password?"}]

    many = jsonl(tmp_path / "many.jsonl", [{"prompt": f"q{i}", "chosen": "yes", "rejected": "no"} for i in range(40)])
    assert main(["data", "split", many, "--test-fraction", "0.25", "-o", str(tmp_path / "split")]) == 0
    n_train, n_test = (sum(1 for _ in open(tmp_path / "split" / f)) for f in ("train.jsonl", "test.jsonl"))
    assert capsys.readouterr().out == f"train: {n_train} pairs, test: {n_test} pairs in {tmp_path / 'split'}\n"
    assert n_train + n_test == 40 and n_test > 0

    assert main(["data", "split", many, "--test-fraction", "1.5", "-o", str(tmp_path / "s2")]) == 2
    assert_one_line_error(capsys, "between 0 and 1")


def test_convert_invalid_file_exits_2_naming_the_line(tmp_path, capsys):
    src = jsonl(tmp_path / "bad.jsonl", GOOD + [{"prompt": "p", "chosen": 1, "rejected": "r"}])
    assert main(["data", "convert", src, "-o", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{src}:3: chosen: must be a string, got number" in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_list(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(io, "_bundled_dir", lambda: tmp_path)
    jsonl(tmp_path / "support.jsonl", GOOD)
    assert main(["data", "list"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("bundled:support") and "2 pairs" in line and "licence Apache-2.0" in line
