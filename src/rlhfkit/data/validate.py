"""`rlhfkit data check`: a report on a preference file that a practitioner can act on.

Errors are records that cannot be used (each with its line and field); warnings are patterns that are legal
but worth a look before training (each with a count and up to five example lines); stats describe the data.
The file is streamed once: only lengths and hashes are kept per pair, so large files fit in memory.
Nothing here raises on malformed content; only an unreadable path or wrong arguments raise (DataError).
"""
from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from typing import Any, Optional

from rlhfkit.data.formats import text_of
from rlhfkit.data.io import PathLike, PreferenceReader, location, prompt_key
from rlhfkit.errors import RlhfkitError
from rlhfkit.types import PreferenceExample

EXAMPLE_LINES = 5          # line numbers quoted per warning
LISTED_ERRORS = 20         # errors listed by format_text before "... and N more"
REPEATED_PROMPT = 5        # a prompt seen more than this many times is reported
LENGTH_BIAS_HIGH = 0.65    # "pick the longer response" accuracy above this (or below 1 - this) is reported
LENGTH_BIAS_MIN_PAIRS = 10  # fewer pairs say nothing about length bias


@dataclass
class Report:
    """The result of `check_file`. `to_dict()` has the stable keys file, records, format, errors, warnings,
    stats; `format_text()` is the human-readable version."""

    file: str
    records: int = 0
    format: Optional[str] = None
    errors: list[dict] = field(default_factory=list)     # {line, field, message}
    warnings: list[dict] = field(default_factory=list)   # {code, message, count, lines}
    stats: dict = field(default_factory=dict)
    unit: str = "line"                                   # what "line" counts: line, record (JSON list) or row

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "records": self.records, "format": self.format, "errors": self.errors,
                "warnings": self.warnings, "stats": self.stats}

    def error_lines(self) -> list[str]:
        """Errors as `file:line: field: message`."""
        return [f"{location(self.file, self.unit, e['line'])}: {e['field']}: {e['message']}" for e in self.errors]

    def format_text(self) -> str:
        s = self.stats
        out = [f"{self.file}: {self.records} records, {s.get('valid_pairs', 0)} valid pairs, "
               f"{s.get('blank_lines', 0)} blank lines, form: {self.format or 'unknown'}"]
        if self.errors:
            out.append(f"errors ({len(self.errors)}):")
            out += ["  " + line for line in self.error_lines()[:LISTED_ERRORS]]
            if len(self.errors) > LISTED_ERRORS:
                out.append(f"  ... and {len(self.errors) - LISTED_ERRORS} more (--json lists them all)")
        if self.warnings:
            out.append(f"warnings ({len(self.warnings)}):")
            for w in self.warnings:
                where = f" [{self.unit}s {', '.join(map(str, w['lines']))}]" if w["lines"] else ""
                out.append(f"  {w['code']}: {w['message']}{where}")
        if s.get("valid_pairs"):
            chars = s["chars"]
            out.append(f"distinct prompts: {s['distinct_prompts']}")
            out.append("chars (mean / median): " + ", ".join(
                f"{k} {chars[k]['mean']:.0f} / {chars[k]['median']:.0f}" for k in ("prompt", "chosen", "rejected")))
            out.append(f"length: chosen longer in {s['chosen_longer']:.1%} of pairs, same length in "
                       f"{s['same_length']:.1%}; 'pick the longer' accuracy {s['longer_wins_accuracy']:.3f}")
            if "truncated_pairs" in s:
                out.append(f"tokens: {s['truncated_pairs']} pairs truncated at max_length {s['max_length']}, "
                           f"{s['prefix_mismatch_pairs']} with a prompt/completion boundary mismatch")
        out.append("OK: no errors" if not self.errors else
                   f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}")
        return "\n".join(out)


def _warning(code: str, message: str, count: int, lines: list) -> dict:
    return {"code": code, "message": message, "count": count, "lines": lines[:EXAMPLE_LINES]}


def _pairs(n: int) -> str:
    return f"{n} pair" if n == 1 else f"{n} pairs"


def _keep_line(lines: list, line: Any) -> None:
    """Remember a line as an example, up to EXAMPLE_LINES of them."""
    if len(lines) < EXAMPLE_LINES:
        lines.append(line)


def _digest(*parts: Any) -> bytes:
    return hashlib.blake2b(json.dumps(parts, ensure_ascii=False).encode("utf-8"), digest_size=16).digest()


class _PairTally:
    """Running statistics over valid pairs: lengths, duplicates, label conflicts, repeated prompts."""

    def __init__(self):
        self.n = 0
        self.chars: dict[str, list[int]] = {"prompt": [], "chosen": [], "rejected": []}
        self.longer: list = []      # lines where chosen is longer
        self.shorter: list = []     # lines where chosen is shorter
        self.n_longer = self.n_shorter = self.n_same = 0
        self.pairs: dict[bytes, Any] = {}    # digest of (prompt, chosen, rejected) -> first line
        self.duplicates: list = []           # (line, earlier line)
        self.opposites: list = []            # (line, earlier line with the labels swapped)
        self.prompts: dict[bytes, list] = {}  # digest of prompt key -> [count, first line]
        self.empty = {"chosen": 0, "rejected": 0}
        self.empty_lines: list = []

    def add(self, ex: PreferenceExample) -> None:
        self.n += 1
        lengths = {k: len(text_of(getattr(ex, k))) for k in self.chars}
        for k, v in lengths.items():
            self.chars[k].append(v)
        if lengths["chosen"] > lengths["rejected"]:
            self.n_longer += 1
            _keep_line(self.longer, ex.line)
        elif lengths["chosen"] < lengths["rejected"]:
            self.n_shorter += 1
            _keep_line(self.shorter, ex.line)
        else:
            self.n_same += 1
        empty = [k for k in ("chosen", "rejected") if not text_of(getattr(ex, k)).strip()]
        for k in empty:
            self.empty[k] += 1
        if empty:
            _keep_line(self.empty_lines, ex.line)
        pair = _digest(ex.prompt, ex.chosen, ex.rejected)
        if pair in self.pairs:
            self.duplicates.append((ex.line, self.pairs[pair]))
        else:
            self.pairs[pair] = ex.line
        swapped = _digest(ex.prompt, ex.rejected, ex.chosen)
        if swapped in self.pairs:
            self.opposites.append((ex.line, self.pairs[swapped]))
        seen = self.prompts.setdefault(_digest(prompt_key(ex.prompt)), [0, ex.line])
        seen[0] += 1

    def longer_wins_accuracy(self) -> float:
        """Accuracy of the rule "the longer response is chosen", ties counting half."""
        return (self.n_longer + 0.5 * self.n_same) / self.n

    def stats(self) -> dict:
        if not self.n:
            return {"distinct_prompts": 0}
        return {
            "distinct_prompts": len(self.prompts),
            "chars": {k: {"mean": round(statistics.fmean(v), 1), "median": float(statistics.median(v))}
                      for k, v in self.chars.items()},
            "chosen_longer": round(self.n_longer / self.n, 4),
            "chosen_shorter": round(self.n_shorter / self.n, 4),
            "same_length": round(self.n_same / self.n, 4),
            "longer_wins_accuracy": round(self.longer_wins_accuracy(), 4),
        }

    def warnings(self, unit: str) -> list[dict]:
        out = []
        n_empty = self.empty["chosen"] + self.empty["rejected"]
        if n_empty:
            out.append(_warning(
                "empty_response", f"empty response in {_pairs(n_empty)} ({self.empty['chosen']} chosen, "
                f"{self.empty['rejected']} rejected): the model learns to stop at once; a real label in some data "
                "(HH-RLHF prefers silence to harm) but often an export bug, so look at them",
                n_empty, self.empty_lines))
        if self.duplicates:
            line, first = self.duplicates[0]
            out.append(_warning(
                "duplicate_pairs", f"exact repeats of an earlier pair: {_pairs(len(self.duplicates))} (e.g. {unit} "
                f"{line} repeats {first}); duplicates weigh twice in training and, in a random split, leak into "
                "the test set", len(self.duplicates), [d[0] for d in self.duplicates]))
        if self.opposites:
            line, first = self.opposites[0]
            out.append(_warning(
                "opposite_labels", f"an earlier pair's prompt and responses with chosen and rejected swapped: "
                f"{_pairs(len(self.opposites))} (e.g. {unit} {line} vs {first}); the labels contradict each other, "
                "so check the annotation or drop one of each", len(self.opposites), [d[0] for d in self.opposites]))
        repeated = sorted((v for v in self.prompts.values() if v[0] > REPEATED_PROMPT), key=lambda v: -v[0])
        if repeated:
            top = ", ".join(f"{unit} {first} x{count}" for count, first in repeated[:3])
            out.append(_warning(
                "repeated_prompts", f"{len(repeated)} prompts appear more than {REPEATED_PROMPT} times (top: "
                f"{top}); expected for ranked data with several pairs per prompt, otherwise look for copy errors",
                len(repeated), [first for _, first in repeated]))
        if self.n >= LENGTH_BIAS_MIN_PAIRS:
            acc = self.longer_wins_accuracy()
            if acc > LENGTH_BIAS_HIGH or acc < 1 - LENGTH_BIAS_HIGH:
                side, count, lines = (("longer", self.n_longer, self.longer) if acc > 0.5
                                      else ("shorter", self.n_shorter, self.shorter))
                out.append(_warning(
                    "length_bias", f"the chosen response is the {side} one in {count} of {self.n} pairs: the rule "
                    f"'pick the longer' scores {acc:.1%}; a reward model can reach that by learning length "
                    "instead of quality, so compare its accuracy with this baseline or balance the lengths",
                    count, lines))
        return out


class _TokenTally:
    """Pairs that `tokenize_pair` truncates at max_length, or whose prompt/completion token boundary shifts."""

    def __init__(self, tokenizer: Any, max_length: int, max_prompt_length: Optional[int]):
        from rlhfkit.data.tokenize import tokenize_pair

        self.tokenize = lambda ex: tokenize_pair(ex, tokenizer, max_length=max_length,
                                                 max_prompt_length=max_prompt_length)
        self.max_length, self.max_prompt_length = max_length, max_prompt_length
        self.truncated: list = []
        self.mismatch: list = []

    def add(self, ex: PreferenceExample) -> None:
        pair = self.tokenize(ex)
        if pair.truncated:
            self.truncated.append(ex.line)
        if pair.prefix_mismatch:
            self.mismatch.append(ex.line)

    def stats(self) -> dict:
        return {"truncated_pairs": len(self.truncated), "prefix_mismatch_pairs": len(self.mismatch),
                "max_length": self.max_length, "max_prompt_length": self.max_prompt_length}

    def warnings(self, n_pairs: int) -> list[dict]:
        out = []
        if self.truncated:
            cap = f" (prompt at most {self.max_prompt_length})" if self.max_prompt_length else ""
            out.append(_warning(
                "truncated", f"{len(self.truncated)} of {n_pairs} pairs exceed max_length {self.max_length} "
                f"tokens{cap} and would be cut; the cut part is not trained on, and a response cut before its "
                "difference compares nothing; raise the limits or shorten those pairs",
                len(self.truncated), self.truncated))
        if self.mismatch:
            out.append(_warning(
                "prefix_mismatch", f"{len(self.mismatch)} pairs tokenise differently at the prompt/completion "
                "boundary (the prompt's tokens are not a prefix of prompt+completion's, usually from a missing "
                "space); the completion then starts one token early, which is harmless but worth knowing",
                len(self.mismatch), self.mismatch))
        return out


def check_file(path: PathLike, fmt: Optional[str] = None, tokenizer: Any = None, max_length: Optional[int] = None,
               max_prompt_length: Optional[int] = None) -> Report:
    """Read a preference file once and report its errors, warnings and statistics.

    fmt overrides the detected form. With a tokenizer (and max_length) the report also counts the pairs that
    would be truncated and those with a prompt/completion token boundary mismatch. Raises DataError only when
    the path cannot be read as data at all (missing, unknown bundled name, unsupported extension).
    """
    if tokenizer is not None and max_length is None:
        raise RlhfkitError("counting truncated pairs needs max_length as well as the tokenizer")
    reader = PreferenceReader(path, fmt)
    tally = _PairTally()
    tokens = _TokenTally(tokenizer, max_length, max_prompt_length) if tokenizer is not None else None
    errors = []
    for n, example, error in reader:
        if error is None:
            try:
                if tokens is not None:
                    tokens.add(example)
                tally.add(example)
                continue
            except RlhfkitError:
                raise  # the tokenizer cannot handle this data at all (e.g. messages without a chat template)
            except Exception as e:
                error_field, message = "record", f"could not be analysed ({type(e).__name__}: {e})"
        else:
            error_field, message = error.field, error.message
        errors.append({"line": n, "field": error_field, "message": message})
    if reader.records == 0 and not errors:
        errors.append({"line": None, "field": "file", "message": "no records (the file is empty or only blank lines)"})
    stats = {"records": reader.records, "valid_pairs": tally.n, "invalid_records": reader.records - tally.n,
             "blank_lines": reader.blank_lines, "format": reader.format, "unit": reader.unit, **tally.stats()}
    warnings = reader.notes + tally.warnings(reader.unit)
    if tokens is not None:
        stats.update(tokens.stats())
        warnings += tokens.warnings(tally.n)
    return Report(file=reader.name, records=reader.records, format=reader.format, errors=errors,
                  warnings=warnings, stats=stats, unit=reader.unit)
