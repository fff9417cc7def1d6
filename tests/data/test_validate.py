"""`check_file`: the real HH-RLHF sample, the malformed-file corpus, warnings and statistics by hand."""
import json
from pathlib import Path

import pytest

from rlhfkit.data.io import load_preferences
from rlhfkit.data.validate import check_file
from rlhfkit.errors import DataError, RlhfkitError

REPO = Path(__file__).resolve().parents[2]
HH_FILE = REPO / ".." / "shared" / "data" / "hh-rlhf-harmless-1600.jsonl"
MALFORMED = REPO / "tests" / "assets" / "malformed"
EXPECTED = json.loads((MALFORMED / "expected.json").read_text())


def jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def pair(prompt, chosen, rejected):
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


# ----------------------------------------------------------------------------------------------
# real data
# ----------------------------------------------------------------------------------------------
def test_hh_rlhf_harmless_sample():
    if not HH_FILE.is_file():
        pytest.fail(f"missing {HH_FILE.resolve()}: the shared/ folder must sit next to the repository "
                    "(see shared/data/README.md)")
    report = check_file(HH_FILE)
    assert report.records == 1600 and report.format == "implicit"
    # line 1255: the chosen transcript has an extra turn glued on with "  Human:" (no blank line), so the
    # text before its last "\n\nAssistant:" is longer than the rejected one's
    assert [(e["line"], e["field"]) for e in report.errors] == [(1255, "chosen/rejected")]
    assert "differ after character 142" in report.errors[0]["message"]
    # four pairs prefer an empty reply to a harmful one: legal, reported as a warning
    assert [(w["code"], w["count"], w["lines"]) for w in report.warnings] == [
        ("empty_response", 4, [87, 517, 926, 1104])]
    assert report.stats["valid_pairs"] == 1599 and report.stats["blank_lines"] == 0
    assert report.format_text().splitlines()[-1] == "1 error"


# ----------------------------------------------------------------------------------------------
# malformed corpus: every file's errors, with exact line and field (tests/assets/malformed/expected.json)
# ----------------------------------------------------------------------------------------------
def test_corpus_is_large_enough_and_complete():
    files = {p.name for p in MALFORMED.iterdir()} - {"expected.json"}
    assert files == set(EXPECTED) and len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file(name):
    want = EXPECTED[name]
    report = check_file(MALFORMED / name)
    assert [[e["line"], e["field"]] for e in report.errors] == want["errors"], want["description"]
    assert report.records == want["records"]
    assert report.stats["blank_lines"] == want.get("blank_lines", 0)
    assert report.unit == want.get("unit", "line")
    assert [w["code"] for w in report.warnings] == want.get("warnings", [])
    for code, lines in want.get("warning_lines", {}).items():
        assert next(w["lines"] for w in report.warnings if w["code"] == code) == lines
    if "message" in want:
        assert want["message"] in report.errors[0]["message"]
    text = report.format_text()
    assert text.splitlines()[-1] == (f"{len(want['errors'])} error{'s' if len(want['errors']) > 1 else ''}"
                                     if want["errors"] else "OK: no errors")
    if want["errors"]:  # the trainers' loader refuses the same files, with the same first error
        with pytest.raises(DataError) as e:
            load_preferences(MALFORMED / name)
        first = "no preference pairs" if want["errors"] == [[None, "file"]] else report.error_lines()[0]
        assert first in str(e.value)


# ----------------------------------------------------------------------------------------------
# warnings and statistics on hand-made files
# ----------------------------------------------------------------------------------------------
def test_length_bias_by_hand(tmp_path):
    # chosen longer in 6 pairs, shorter in 2, same length in 2:
    # share longer = 6/10; "pick the longer" accuracy = (6 + 2/2) / 10 = 0.7 > 0.65 -> warning
    rows = [pair(f"p{i}", "x" * (i + 2), "y") for i in range(6)]
    rows += [pair("q1", "a", "bbb"), pair("q2", "aa", "bbbb"), pair("r1", "ab", "cd"), pair("r2", "abc", "cde")]
    report = check_file(jsonl(tmp_path / "bias.jsonl", rows))
    s = report.stats
    assert (s["chosen_longer"], s["chosen_shorter"], s["same_length"]) == (0.6, 0.2, 0.2)
    assert s["longer_wins_accuracy"] == 0.7
    # chosen lengths 2..7, 1, 2, 2, 3 -> mean 35/10; sorted 1,2,2,2,3,3,4,5,6,7 -> median 3
    # rejected lengths 1 (x6), 3, 4, 2, 3 -> mean 18/10; sorted 1,1,1,1,1,1,2,3,3,4 -> median 1
    assert s["chars"]["chosen"] == {"mean": 3.5, "median": 3.0}
    assert s["chars"]["rejected"] == {"mean": 1.8, "median": 1.0}
    [warning] = report.warnings
    assert warning["code"] == "length_bias" and warning["count"] == 6 and warning["lines"] == [1, 2, 3, 4, 5]
    assert "'pick the longer' scores 70.0%" in warning["message"]
    assert "length: chosen longer in 60.0% of pairs, same length in 20.0%; 'pick the longer' accuracy 0.700" \
        in report.format_text()


def test_no_length_bias_warning_below_ten_pairs(tmp_path):
    report = check_file(jsonl(tmp_path / "few.jsonl", [pair(f"p{i}", "long answer", "no") for i in range(9)]))
    assert report.stats["longer_wins_accuracy"] == 1.0 and report.warnings == []


def test_duplicates_and_opposite_labels_with_exact_lines(tmp_path):
    rows = [pair("p1", "good", "bad"),      # 1
            pair("p2", "yes", "no"),        # 2
            pair("p1", "good", "bad"),      # 3 duplicate of 1
            pair("p1", "bad", "good"),      # 4 opposite of 1
            pair("p3", "fine", "poor"),     # 5
            pair("p2", "yes", "no"),        # 6 duplicate of 2
            pair("p2", "no", "yes")]        # 7 opposite of 2
    report = check_file(jsonl(tmp_path / "dup.jsonl", rows))
    assert report.errors == []
    by_code = {w["code"]: w for w in report.warnings}
    assert (by_code["duplicate_pairs"]["count"], by_code["duplicate_pairs"]["lines"]) == (2, [3, 6])
    assert "e.g. line 3 repeats 1" in by_code["duplicate_pairs"]["message"]
    assert (by_code["opposite_labels"]["count"], by_code["opposite_labels"]["lines"]) == (2, [4, 7])
    assert "e.g. line 4 vs 1" in by_code["opposite_labels"]["message"]
    assert report.stats["distinct_prompts"] == 3


def test_repeated_prompts_top_ones(tmp_path):
    rows = [pair("common", f"a{i}", f"b{i}") for i in range(6)]      # lines 1-6: 6 times
    rows += [pair("other", f"c{i}", f"d{i}") for i in range(5)]      # lines 7-11: 5 times (not more than 5)
    rows += [pair("busy ", f"e{i}", f"f{i}") for i in range(8)]      # lines 12-19: 8 times
    report = check_file(jsonl(tmp_path / "rep.jsonl", rows))
    [warning] = [w for w in report.warnings if w["code"] == "repeated_prompts"]
    assert warning["count"] == 2 and warning["lines"] == [12, 1]
    assert "top: line 12 x8, line 1 x6" in warning["message"]


def test_errors_are_capped_in_the_text_and_complete_in_json(tmp_path):
    rows = [{"prompt": "p", "chosen": "c"}] * 23 + [pair("p", "c", "r")]
    report = check_file(jsonl(tmp_path / "bad.jsonl", rows))
    text = report.format_text().splitlines()
    assert text[0] == f"{tmp_path / 'bad.jsonl'}: 24 records, 1 valid pairs, 0 blank lines, form: explicit"
    assert text[1] == "errors (23):"
    assert text[2] == f"  {tmp_path / 'bad.jsonl'}:1: rejected: missing field 'rejected'"
    assert text[22] == "  ... and 3 more (--json lists them all)"
    assert text[-1] == "23 errors"
    d = report.to_dict()
    assert list(d) == ["file", "records", "format", "errors", "warnings", "stats"]
    assert len(d["errors"]) == 23 and d["errors"][22] == {"line": 23, "field": "rejected",
                                                          "message": "missing field 'rejected'"}
    assert json.loads(json.dumps(d)) == d


# ----------------------------------------------------------------------------------------------
# token counts with a tiny word-level tokenizer (one token per space-separated word)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "<unk> </s> a b c d e f".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")


def test_truncation_and_boundary_counts(tmp_path, word_tokenizer):
    rows = [pair("a b", " c d e", " f"),        # 2 prompt + 4 completion (3 words + EOS) = 6 > 5: truncated
            pair("a", " c", " d"),              # 1 + 2 = 3: fits
            pair("a b", "c", " d"),             # "a bc" merges across the boundary: prefix mismatch
            pair("a b c d", " e", " f")]        # 4 + 2 = 6 > 5: truncated
    report = check_file(jsonl(tmp_path / "tok.jsonl", rows), tokenizer=word_tokenizer, max_length=5)
    s = report.stats
    assert (s["truncated_pairs"], s["prefix_mismatch_pairs"], s["max_length"]) == (2, 1, 5)
    by_code = {w["code"]: w for w in report.warnings}
    assert by_code["truncated"]["lines"] == [1, 4] and by_code["prefix_mismatch"]["lines"] == [3]
    assert "tokens: 2 pairs truncated at max_length 5, 1 with a prompt/completion boundary mismatch" \
        in report.format_text()


def test_tokenizer_needs_max_length(tmp_path, word_tokenizer):
    with pytest.raises(RlhfkitError, match="needs max_length"):
        check_file(jsonl(tmp_path / "t.jsonl", [pair("a", " b", " c")]), tokenizer=word_tokenizer)


def test_a_record_that_breaks_analysis_becomes_its_error(tmp_path, monkeypatch, word_tokenizer):
    import rlhfkit.data.tokenize as tokenize

    real = tokenize.tokenize_pair

    def fragile(example, *args, **kwargs):
        if example.prompt == "b":
            raise ValueError("boom")
        return real(example, *args, **kwargs)

    monkeypatch.setattr(tokenize, "tokenize_pair", fragile)
    rows = [pair("a", " c", " d"), pair("b", " c", " d"), pair("a", " d", " c")]
    report = check_file(jsonl(tmp_path / "t.jsonl", rows), tokenizer=word_tokenizer, max_length=8)
    assert report.errors == [{"line": 2, "field": "record", "message": "could not be analysed (ValueError: boom)"}]
    assert report.stats["valid_pairs"] == 2
