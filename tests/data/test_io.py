"""Readers (JSONL, JSON list, Parquet, `datasets` folders, bundled:NAME), load, write, convert and split."""
import json
from pathlib import Path

import pytest

from rlhfkit.data import io
from rlhfkit.data.io import (
    PreferenceReader,
    convert_file,
    list_bundled,
    load_preferences,
    read_jsonl,
    resolve_data_path,
    split_examples,
    split_file,
    write_jsonl,
)
from rlhfkit.errors import DataError
from rlhfkit.types import PreferenceExample

EXPLICIT = [{"prompt": "Reset my password?", "chosen": "Settings > Security.", "rejected": "No."},
            {"prompt": "Where is my order?", "chosen": "Here is the tracking link.", "rejected": "Wait."}]
CONVERSATIONAL = [{"prompt": [{"role": "user", "content": "Cancel my plan?"}],
                   "chosen": [{"role": "assistant", "content": "Done, it ends on the 30th."}],
                   "rejected": [{"role": "assistant", "content": "Why?"}]}]
HH = [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant: Sure, here is how.",
       "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant: No."},
      {"chosen": "\n\nHuman: Price?\n\nAssistant: $5 a month.",
       "rejected": "\n\nHuman: Price?\n\nAssistant: Too much."}]


def jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def as_tuples(examples):
    return [(e.prompt, e.chosen, e.rejected) for e in examples]


# ----------------------------------------------------------------------------------------------
# readers
# ----------------------------------------------------------------------------------------------
def test_read_jsonl_yields_blank_lines_and_errors_with_their_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n[1]\n{"b": ')
    triples = [(n, obj, err and err.field) for n, obj, err in read_jsonl(path)]
    assert triples == [(1, {"a": 1}, None), (2, None, None), (3, None, "record"), (4, None, "json")]


def test_explicit_jsonl(tmp_path):
    examples = load_preferences(jsonl(tmp_path / "e.jsonl", EXPLICIT))
    assert as_tuples(examples) == [tuple(r.values()) for r in EXPLICIT]
    assert [e.line for e in examples] == [1, 2]


def test_implicit_jsonl(tmp_path):
    reader = PreferenceReader(jsonl(tmp_path / "hh.jsonl", HH))
    examples = [ex for _, ex, _ in reader]
    assert reader.format == "implicit"
    assert as_tuples(examples) == [
        ("\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Refund?\n\nAssistant:", "Sure, here is how.", "No."),
        ("\n\nHuman: Price?\n\nAssistant:", "$5 a month.", "Too much.")]


def test_json_list_counts_records(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([EXPLICIT[0], {"prompt": "p", "chosen": "c"}]))
    reader = PreferenceReader(path)
    triples = [(n, err and err.field) for n, _, err in reader]
    assert reader.unit == "record" and triples == [(1, None), (2, "rejected")]
    with pytest.raises(DataError) as e:
        load_preferences(path)
    assert f"{path} record 2: rejected: missing field 'rejected'" in str(e.value)


def test_json_name_holding_json_lines(tmp_path):
    path = jsonl(tmp_path / "lines.json", EXPLICIT)
    assert len(load_preferences(path)) == 2


def test_parquet_explicit_and_conversational(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(EXPLICIT * 3), tmp_path / "e.parquet", row_group_size=2)
    pq.write_table(pa.Table.from_pylist(CONVERSATIONAL), tmp_path / "c.parquet")
    explicit = load_preferences(tmp_path / "e.parquet")
    assert as_tuples(explicit) == [tuple(r.values()) for r in EXPLICIT * 3]
    assert [e.line for e in explicit] == [1, 2, 3, 4, 5, 6]
    conversational = load_preferences(tmp_path / "c.parquet")
    assert as_tuples(conversational) == [tuple(r.values()) for r in CONVERSATIONAL]


def test_corrupt_parquet_is_a_file_error(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    triples = list(PreferenceReader(path))
    assert len(triples) == 1 and triples[0][0] is None and triples[0][2].field == "file"


def test_datasets_folder_dataset_and_dataset_dict(tmp_path):
    import datasets

    datasets.Dataset.from_list(EXPLICIT).save_to_disk(str(tmp_path / "ds"))
    assert as_tuples(load_preferences(tmp_path / "ds")) == [tuple(r.values()) for r in EXPLICIT]

    datasets.DatasetDict({"train": datasets.Dataset.from_list(HH),
                          "test": datasets.Dataset.from_list(HH[:1])}).save_to_disk(str(tmp_path / "dd"))
    reader = PreferenceReader(tmp_path / "dd")
    assert [n for n, ex, _ in reader if ex] == [1, 2] and reader.format == "implicit"
    assert [n["code"] for n in reader.notes] == ["split"]

    datasets.DatasetDict({"validation": datasets.Dataset.from_list(HH)}).save_to_disk(str(tmp_path / "nt"))
    with pytest.raises(DataError, match=r"holds the splits validation but no 'train'"):
        load_preferences(tmp_path / "nt")


def test_plain_folder_and_unknown_extension_are_refused(tmp_path):
    with pytest.raises(DataError, match="not one written by `datasets`"):
        load_preferences(tmp_path)
    (tmp_path / "data.csv").write_text("prompt,chosen,rejected\n")
    with pytest.raises(DataError, match=r"supported: \.jsonl"):
        load_preferences(tmp_path / "data.csv")


def test_missing_path_lists_data_files_next_to_it(tmp_path):
    jsonl(tmp_path / "train.jsonl", EXPLICIT)
    with pytest.raises(DataError) as e:
        resolve_data_path(tmp_path / "trian.jsonl")
    assert str(e.value) == (f"no such file or folder: {tmp_path / 'trian.jsonl'}; data files in {tmp_path}: "
                            "train.jsonl (bundled datasets: bundled:support)")


# ----------------------------------------------------------------------------------------------
# bundled data
# ----------------------------------------------------------------------------------------------
def test_bundled_unknown_name_lists_what_exists():
    with pytest.raises(DataError) as e:
        resolve_data_path("bundled:nope")
    assert str(e.value) == "unknown bundled dataset 'nope'; bundled: bundled:support (see `rlhfkit data list`)"


def test_bundled_missing_file_and_listing(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_bundled_dir", lambda: tmp_path)
    with pytest.raises(DataError, match="bundled dataset 'support' is missing its file"):
        resolve_data_path("bundled:support")
    path = jsonl(tmp_path / "support.jsonl", EXPLICIT)
    assert resolve_data_path("bundled:support") == path
    assert list_bundled() == [{"name": "support", "path": str(path), "pairs": 2, "bytes": path.stat().st_size,
                               "licence": "Apache-2.0"}]


def test_bundled_support_resolves_inside_the_package():
    path = resolve_data_path("bundled:support")
    assert path.parts[-3:] == ("data", "bundled", "support.jsonl")
    assert len(load_preferences("bundled:support")) == list_bundled()[0]["pairs"]


# ----------------------------------------------------------------------------------------------
# forms within one file
# ----------------------------------------------------------------------------------------------
def test_file_form_is_the_majority_and_other_forms_are_errors(tmp_path):
    path = jsonl(tmp_path / "mixed.jsonl", [CONVERSATIONAL[0]] + EXPLICIT + HH[:1])
    reader = PreferenceReader(path)
    errors = [(n, e.field, e.message) for n, _, e in reader if e]
    assert reader.format == "explicit"
    assert [(n, f) for n, f, _ in errors] == [(1, "prompt"), (4, "prompt")]
    assert "this record is in conversational form, but the file is read as explicit" in errors[0][2]
    assert "this record is in implicit form" in errors[1][2]


def test_format_override(tmp_path):
    path = jsonl(tmp_path / "hh.jsonl", HH)
    with pytest.raises(DataError, match="1: prompt: missing field 'prompt' .* as --format says"):
        load_preferences(path, fmt="explicit")
    with pytest.raises(DataError, match="unknown format 'tsv'"):
        load_preferences(path, fmt="tsv")


def test_load_preferences_quotes_the_first_errors_and_points_at_data_check(tmp_path):
    path = jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "chosen": "c"}] * 7 + EXPLICIT)
    with pytest.raises(DataError) as e:
        load_preferences(path)
    lines = str(e.value).splitlines()
    assert lines[0] == f"{path}: 7 of 9 records are invalid:"
    assert lines[1] == f"  {path}:1: rejected: missing field 'rejected'"
    assert lines[5] == f"  {path}:5: rejected: missing field 'rejected'"
    assert lines[6] == "  ... and 2 more"
    assert lines[7] == f"run `rlhfkit data check {path}` for the full report, fix or remove them"


def test_load_preferences_refuses_an_empty_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="no preference pairs"):
        load_preferences(tmp_path / "empty.jsonl")


# ----------------------------------------------------------------------------------------------
# write, convert
# ----------------------------------------------------------------------------------------------
def test_write_jsonl_is_atomic(tmp_path):
    path = tmp_path / "out" / "pairs.jsonl"
    assert write_jsonl(path, [PreferenceExample("p", "c", "r", id="1")]) == 1
    before = path.read_text()
    assert before == '{"prompt": "p", "chosen": "c", "rejected": "r", "id": "1"}\n'

    def failing():
        yield PreferenceExample("p2", "c2", "r2")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_jsonl(path, failing())
    assert path.read_text() == before               # the old file is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["pairs.jsonl"]  # no temporary file left


def test_convert_implicit_to_explicit_round_trip(tmp_path):
    src = jsonl(tmp_path / "hh.jsonl", HH)
    assert convert_file(src, tmp_path / "explicit.jsonl", to="explicit") == 2
    again = load_preferences(tmp_path / "explicit.jsonl")
    assert as_tuples(again) == as_tuples(load_preferences(src))
    reader = PreferenceReader(tmp_path / "explicit.jsonl")
    list(reader)
    assert reader.format == "explicit"


def test_convert_to_conversational_splits_hh_turns(tmp_path):
    src = jsonl(tmp_path / "hh.jsonl", HH)
    assert convert_file(src, tmp_path / "conv.jsonl", to="conversational") == 2
    first = json.loads((tmp_path / "conv.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                {"role": "user", "content": "Refund?"}],
                     "chosen": [{"role": "assistant", "content": "Sure, here is how."}],
                     "rejected": [{"role": "assistant", "content": "No."}]}
    with pytest.raises(DataError, match="record 1 holds chat messages"):
        convert_file(tmp_path / "conv.jsonl", tmp_path / "back.jsonl", to="explicit")


# ----------------------------------------------------------------------------------------------
# split
# ----------------------------------------------------------------------------------------------
def many_pairs(n_prompts: int, per_prompt: int = 3) -> list[PreferenceExample]:
    return [PreferenceExample(f"question {i}", f"good answer {j}", f"bad answer {j}", line=i * per_prompt + j + 1)
            for i in range(n_prompts) for j in range(per_prompt)]


def test_split_keeps_each_prompt_on_one_side_and_is_deterministic():
    examples = many_pairs(1000)
    train, test = split_examples(examples, 0.2, seed=3)
    train_prompts, test_prompts = {e.prompt for e in train}, {e.prompt for e in test}
    assert not train_prompts & test_prompts
    assert len(train) + len(test) == 3000
    assert 160 <= len(test_prompts) <= 240          # about 20% of 1000 prompts
    assert len(test) == 3 * len(test_prompts)       # all three pairs of a prompt travel together
    assert split_examples(examples, 0.2, seed=3) == (train, test)
    assert split_examples(examples, 0.2, seed=4) != (train, test)
    assert [e.line for e in train] == sorted(e.line for e in train)  # order kept


def test_split_ignores_whitespace_differences_in_prompts():
    a = PreferenceExample("How do I  reset\nmy password?", "x", "y")
    b = PreferenceExample("How do I reset my password? ", "x2", "y2")
    for seed in range(20):
        train, test = split_examples([a, b], 0.5, seed)
        assert sorted(map(len, (train, test))) == [0, 2]


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan")])
def test_split_fraction_must_be_inside_0_1(fraction):
    with pytest.raises(DataError, match="between 0 and 1"):
        split_examples(many_pairs(3), fraction, 0)


def test_split_file_writes_train_and_test(tmp_path):
    src = tmp_path / "all.jsonl"
    write_jsonl(src, many_pairs(50, 2))
    n_train, n_test = split_file(src, tmp_path / "out", test_fraction=0.3, seed=0)
    train = load_preferences(tmp_path / "out" / "train.jsonl")
    test = load_preferences(tmp_path / "out" / "test.jsonl")
    assert (n_train, n_test) == (len(train), len(test)) and n_train + n_test == 100
    assert not {e.prompt for e in train} & {e.prompt for e in test}
    with pytest.raises(DataError, match="the test part would be empty .1 distinct prompts"):
        split_file(jsonl(tmp_path / "one.jsonl", EXPLICIT[:1]), tmp_path / "o2", test_fraction=0.01, seed=0)
