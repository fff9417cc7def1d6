"""Read, write, convert and split preference files.

Readers stream records as `(n, record, error)` triples, where n is the 1-based line (JSONL) or record/row
index (JSON list, Parquet, `datasets` folder), and exactly one of record (a dict) and error (a RecordError) is
set; a blank line comes through as `(n, None, None)`. A reader never raises on bad content: every problem
becomes an error at its line. `PreferenceReader` turns those records into `PreferenceExample`s, deciding the
file's form from its first records; `load_preferences` is what trainers call and refuses a file with any
invalid record (nothing is dropped silently).

Supported inputs: .jsonl (also .jsonl.gz), .json (a list of objects, or JSON Lines under a .json name),
.parquet, a folder written by `datasets`' `save_to_disk`, and `bundled:NAME` for the data shipped with rlhfkit.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import tempfile
from collections import Counter
from importlib import resources
from itertools import chain, islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from rlhfkit.data.formats import FORMATS, RecordError, detect_format, json_type, normalize
from rlhfkit.errors import DataError
from rlhfkit.types import PreferenceExample

PathLike = Union[str, os.PathLike]
Triple = tuple[Optional[int], Optional[dict], Optional[RecordError]]

BUNDLED = {
    "support": {"file": "support.jsonl", "licence": "Apache-2.0",
                "description": "customer-support preference pairs written for rlhfkit"},
}

SUPPORTED = ".jsonl, .jsonl.gz, .json, .parquet, a folder saved by `datasets` (save_to_disk), or bundled:NAME"

# The file's form is the most common one among this many first records (unless --format is given).
DETECT_WINDOW = 100

# How many errors `load_preferences` quotes before pointing at `rlhfkit data check`.
QUOTED_ERRORS = 5


# ----------------------------------------------------------------------------------------------
# paths
# ----------------------------------------------------------------------------------------------
def _bundled_dir() -> Path:
    return Path(str(resources.files("rlhfkit.data").joinpath("bundled")))


def _bundled_names() -> str:
    return ", ".join(f"bundled:{name}" for name in BUNDLED)


def resolve_data_path(name: PathLike) -> Path:
    """`bundled:NAME` -> the file shipped in rlhfkit/data/bundled; anything else -> that path, which must exist."""
    text = str(name)
    if text.startswith("bundled:"):
        key = text[len("bundled:"):]
        if key not in BUNDLED:
            raise DataError(f"unknown bundled dataset {key!r}; bundled: {_bundled_names()} (see `rlhfkit data list`)")
        path = _bundled_dir() / BUNDLED[key]["file"]
        if not path.is_file():
            raise DataError(f"bundled dataset {key!r} is missing its file {path}; reinstall rlhfkit")
        return path
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {text}{_nearby(path)} (bundled datasets: {_bundled_names()})")
    return path


def _nearby(path: Path) -> str:
    """A hint listing the data files next to a missing path, if its folder exists."""
    folder = path.parent
    if not folder.is_dir():
        return ""
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz", ".json", ".parquet")))
    if not names:
        return ""
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"; data files in {folder}: {', '.join(names[:5])}{more}"


def list_bundled() -> list[dict]:
    """The bundled datasets: name, path, pairs (non-blank lines), bytes and licence."""
    out = []
    for name, info in BUNDLED.items():
        path = resolve_data_path(f"bundled:{name}")
        with open(path, "rb") as f:
            pairs = sum(1 for raw in f if raw.strip())
        out.append({"name": name, "path": str(path), "pairs": pairs, "bytes": path.stat().st_size,
                    "licence": info["licence"]})
    return out


def location(name: str, unit: str, n: Optional[int]) -> str:
    """Where a record is, for messages: "file.jsonl:12", "file.json record 3", or just the file."""
    if n is None:
        return name
    return f"{name}:{n}" if unit == "line" else f"{name} {unit} {n}"


# ----------------------------------------------------------------------------------------------
# readers: (n, record, error) triples
# ----------------------------------------------------------------------------------------------
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF16_MESSAGE = "the file is UTF-16 encoded (it starts with a UTF-16 byte-order mark); re-save it as UTF-8"


def _ran_out(error: json.JSONDecodeError, text: str) -> bool:
    """Whether a JSON parse failed because the text stopped early (rather than at a wrong character)."""
    return error.msg.startswith("Unterminated string") or error.pos >= len(text.rstrip())


def _parse_json_line(raw: bytes, complete: bool) -> tuple[Optional[dict], Optional[RecordError]]:
    """One JSONL line (without its line end) -> (object, None) or (None, error)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, RecordError("encoding", f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} "
                                             "of the line); re-save the file as UTF-8")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        if not complete and _ran_out(e, text):
            return None, RecordError("json", "truncated JSON (file ends mid-record): the last line was cut off, "
                                             "e.g. by an interrupted write or download")
        return None, RecordError("json", f"invalid JSON: {e.msg} at column {e.colno}")
    except RecursionError:
        return None, RecordError("json", "JSON nested too deeply to read")
    if not isinstance(record, dict):
        return None, RecordError("record", f"expected one JSON object per line, got {json_type(record)}")
    return record, None


def read_jsonl(path: PathLike, notes: Optional[list] = None) -> Iterator[Triple]:
    """Stream a JSON Lines file (optionally gzipped) line by line, in binary, so any size fits in memory.

    Accepts CRLF line ends and a UTF-8 byte-order mark on line 1 (noted in `notes`); a blank line yields
    (n, None, None). A last line cut off mid-record is reported as truncated JSON.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1:
                if raw.startswith(_UTF16_BOMS):
                    yield 1, None, RecordError("encoding", _UTF16_MESSAGE)
                    return
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                    if notes is not None:
                        notes.append({"code": "bom", "message": "the file starts with a UTF-8 byte-order mark "
                                      "(ignored; some tools choke on it)", "count": 1, "lines": [1]})
            complete = raw.endswith(b"\n")  # only the last line of a file can lack its line end
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                yield n, None, None
                continue
            record, error = _parse_json_line(raw, complete)
            yield n, record, error


def read_json_list(path: PathLike, notes: Optional[list] = None) -> Iterator[Triple]:
    """A .json file holding one list of objects; n is the 1-based index of the record in the list."""
    data = Path(path).read_bytes()
    if data.startswith(_UTF16_BOMS):
        yield None, None, RecordError("encoding", _UTF16_MESSAGE)
        return
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        if notes is not None:
            notes.append({"code": "bom", "message": "the file starts with a UTF-8 byte-order mark (ignored)",
                          "count": 1, "lines": []})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield None, None, RecordError("encoding", f"invalid UTF-8 at byte {e.start + 1} of the file; "
                                                  "re-save it as UTF-8")
        return
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        what = "truncated JSON (file ends mid-list)" if _ran_out(e, text) else f"invalid JSON: {e.msg}"
        yield None, None, RecordError("json", f"{what} at line {e.lineno} column {e.colno}")
        return
    except RecursionError:
        yield None, None, RecordError("json", "JSON nested too deeply to read")
        return
    if not isinstance(items, list):
        yield None, None, RecordError("json", f"expected a list of records, got {json_type(items)}")
        return
    for n, item in enumerate(items, 1):
        if isinstance(item, dict):
            yield n, item, None
        else:
            yield n, None, RecordError("record", f"expected an object, got {json_type(item)}")


def read_parquet(path: PathLike, batch_size: int = 1024) -> Iterator[Triple]:
    """A Parquet file, read batch by batch; n is the 1-based row."""
    import pyarrow.parquet as pq

    n = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                n += 1
                yield n, row, None
    except Exception as e:  # a corrupt or non-Parquet file: report it, never a traceback
        yield None, None, RecordError("file", f"cannot read as Parquet after {n} rows: {e}")


def read_datasets_folder(path: PathLike, notes: Optional[list] = None) -> Iterator[Triple]:
    """A folder written by `datasets`' save_to_disk; for a DatasetDict the "train" split. n is the 1-based row."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise DataError(f"{path}: cannot load this `datasets` folder: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if "train" not in splits:
            raise DataError(f"{path} holds the splits {', '.join(splits)} but no 'train'; "
                            f"pass one split's folder, e.g. {Path(path) / splits[0]}")
        if notes is not None and len(splits) > 1:
            notes.append({"code": "split", "message": f"read the 'train' split (the folder also has "
                          f"{', '.join(s for s in splits if s != 'train')})", "count": 1, "lines": []})
        ds = ds["train"]
    for n, row in enumerate(ds, 1):
        yield n, row, None


def _is_datasets_folder(path: Path) -> bool:
    return any((path / marker).is_file() for marker in ("dataset_dict.json", "state.json"))


def _first_char(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    return head.lstrip()[:1]


def open_records(path: Path, notes: Optional[list] = None) -> tuple[Iterator[Triple], str]:
    """Pick the reader for a path by its extension (or folder); returns (triples, unit of n)."""
    name = path.name.lower()
    if path.is_dir():
        if not _is_datasets_folder(path):
            raise DataError(f"{path} is a folder but not one written by `datasets` save_to_disk (no "
                            f"dataset_dict.json or state.json); supported: {SUPPORTED}")
        return read_datasets_folder(path, notes), "row"
    if name.endswith((".jsonl", ".jsonl.gz")):
        return read_jsonl(path, notes), "line"
    if name.endswith(".json"):
        if _first_char(path) == b"[":
            return read_json_list(path, notes), "record"
        return read_jsonl(path, notes), "line"  # JSON Lines saved under a .json name
    if name.endswith((".parquet", ".pq")):
        return read_parquet(path), "row"
    raise DataError(f"cannot tell how to read {path} from its extension; supported: {SUPPORTED}")


# ----------------------------------------------------------------------------------------------
# records -> examples
# ----------------------------------------------------------------------------------------------
def majority_format(records: Iterable[dict]) -> Optional[str]:
    """The most common form among records that have one (ties: the first seen); None if none has."""
    counts: Counter = Counter()
    for record in records:
        try:
            counts[detect_format(record)] += 1
        except RecordError:
            continue
    return counts.most_common(1)[0][0] if counts else None


def _guarded(triples: Iterator[Triple]) -> Iterator[Triple]:
    """Pass triples through; a read failure midway (disk error, corrupt gzip) ends them with a file error."""
    try:
        yield from triples
    except (OSError, EOFError) as e:
        yield None, None, RecordError("file", f"reading stopped: {e}")


class PreferenceReader:
    """Iterate a preference file as (n, example, error) triples; exactly one of example and error is set.

    Blank lines are skipped and counted. Counters grow during iteration: `records` (non-blank records read,
    valid or not), `blank_lines`, `notes` (harmless oddities, as warning dicts). `format` is the form records
    are read as: `fmt` if given, else the majority form of the first DETECT_WINDOW records; a record of
    another form is an error that names the form it is in. `unit` says what n counts ("line", "record", "row").
    A reader streams its file once: iterate it a single time.
    """

    def __init__(self, path: PathLike, fmt: Optional[str] = None):
        if fmt is not None and fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.name = str(path)
        self.path = resolve_data_path(path)
        self.fmt_given = fmt
        self.format = fmt
        self.records = 0
        self.blank_lines = 0
        self.notes: list[dict] = []
        try:
            self._triples, self.unit = open_records(self.path, self.notes)
        except OSError as e:
            raise DataError(f"cannot read {self.name}: {e.strerror or e}") from None

    def __iter__(self) -> Iterator[tuple[Optional[int], Optional[PreferenceExample], Optional[RecordError]]]:
        triples = _guarded(self._triples)
        head = list(islice(triples, DETECT_WINDOW))
        if self.format is None:
            self.format = majority_format(record for _, record, _ in head if record is not None)
        for n, record, error in chain(head, triples):
            if record is None and error is None:
                self.blank_lines += 1
                continue
            if n is not None:
                self.records += 1
            example = None
            if error is None:
                try:
                    example = self._example(record, n)
                except RecordError as e:
                    error = e
                except Exception as e:  # anything unforeseen in one record is that record's error
                    error = RecordError("record", f"could not be read ({type(e).__name__}: {e})")
            yield n, example, error

    def _example(self, record: dict, n: Optional[int]) -> PreferenceExample:
        if self.format is None:  # none of the first records had a form; take the first that has one
            self.format = detect_format(record)
        try:
            return normalize(record, self.format, n)
        except RecordError as e:
            try:
                found = detect_format(record)
            except RecordError:
                raise e from None
            if found == self.format:
                raise
            why = "as --format says" if self.fmt_given else "the form of most of its first records"
            raise RecordError(e.field, f"{e.message} (this record is in {found} form, but the file is read as "
                                       f"{self.format}, {why}; use one form per file)") from None


def _error_line(name: str, unit: str, n: Optional[int], error: RecordError) -> str:
    return f"{location(name, unit, n)}: {error.field}: {error.message}"


def load_preferences(path: PathLike, fmt: Optional[str] = None) -> list[PreferenceExample]:
    """All pairs of a preference file, for trainers. Raises DataError if any record is invalid (quoting the
    first few problems as file:line: field: message) or if there are no pairs; never drops records silently."""
    reader = PreferenceReader(path, fmt)
    examples, errors = [], []
    for n, example, error in reader:
        if error is not None:
            errors.append(_error_line(reader.name, reader.unit, n, error))
        else:
            examples.append(example)
    if errors:
        quoted = "\n  ".join(errors[:QUOTED_ERRORS])
        more = f"\n  ... and {len(errors) - QUOTED_ERRORS} more" if len(errors) > QUOTED_ERRORS else ""
        raise DataError(f"{reader.name}: {len(errors)} of {reader.records} records are invalid:\n  {quoted}{more}\n"
                        f"run `rlhfkit data check {reader.name}` for the full report, fix or remove them")
    if not examples:
        raise DataError(f"{reader.name}: no preference pairs (the file is empty or only blank lines)")
    return examples


# ----------------------------------------------------------------------------------------------
# writing and converting
# ----------------------------------------------------------------------------------------------
def write_jsonl(path: PathLike, examples: Iterable[PreferenceExample]) -> int:
    """Write examples as JSONL (one `to_dict()` per line) atomically. Returns the number written."""
    return write_jsonl_rows(path, (example.to_dict() for example in examples))


def write_jsonl_rows(path: PathLike, rows: Iterable[dict]) -> int:
    """Write dicts as JSON Lines atomically (a temporary file renamed into place); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def read_json_objects(path: PathLike) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a small JSONL file (score requests, run metrics, eval
    samples); a line that is not a JSON object is an error naming file:line."""
    from rlhfkit.data.formats import json_type

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {json_type(rec)}")
        rows.append((n, rec))
    return rows


def to_explicit(example: PreferenceExample) -> PreferenceExample:
    """The same pair with plain-text prompt and responses; message lists cannot be (no template to render)."""
    if any(isinstance(v, list) for v in (example.prompt, example.chosen, example.rejected)):
        where = f"record {example.line}" if example.line is not None else "a record"
        raise DataError(f"{where} holds chat messages, which have no plain-text form without a chat template; "
                        "convert to conversational instead (rlhfkit applies the model's template when tokenising)")
    return example


def to_conversational(example: PreferenceExample) -> PreferenceExample:
    """The same pair as messages: an HH-style prompt becomes its turns, other text one user message; each
    text response becomes one assistant message."""
    from rlhfkit.data.tokenize import hh_to_messages

    prompt = example.prompt
    if isinstance(prompt, str):
        prompt = hh_to_messages(prompt) or [{"role": "user", "content": prompt}]

    def answer(value):
        return value if isinstance(value, list) else [{"role": "assistant", "content": value}]

    return PreferenceExample(prompt, answer(example.chosen), answer(example.rejected), id=example.id,
                             source=example.source, margin=example.margin, line=example.line)


def convert_file(src: PathLike, dst: PathLike, to: str = "explicit", fmt: Optional[str] = None) -> int:
    """Rewrite a preference file as explicit or conversational JSONL; returns the number of pairs written."""
    converters = {"explicit": to_explicit, "conversational": to_conversational}
    if to not in converters:
        raise DataError(f"cannot convert to {to!r}; choose explicit or conversational")
    examples = [converters[to](e) for e in load_preferences(src, fmt)]
    return write_jsonl(dst, examples)


# ----------------------------------------------------------------------------------------------
# splitting by prompt
# ----------------------------------------------------------------------------------------------
def prompt_key(prompt) -> str:
    """A prompt with whitespace runs collapsed (messages as role/content pairs): the unit of a split, so that
    prompts differing only in spacing land on the same side."""
    if isinstance(prompt, str):
        return " ".join(prompt.split())
    return json.dumps([[m.get("role"), " ".join(str(m.get("content", "")).split())] for m in prompt],
                      ensure_ascii=False)


def _bucket(prompt, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the prompt and the seed."""
    digest = hashlib.sha256(f"{seed}\x00{prompt_key(prompt)}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def split_by_prompt(items: Iterable, test_fraction: float, seed: int = 0,
                    key: Callable[[Any], Any] = lambda item: item) -> tuple[list, list]:
    """(train, test) by a seeded hash of each item's prompt (`key(item)`): all items of a prompt land on the same
    side, the same inputs always give the same split, and about `test_fraction` of the prompts go to test. Order
    is kept. The one rule behind `rlhfkit data split`, --eval-fraction and PPO's held-out prompts."""
    if not 0 < test_fraction < 1:
        raise DataError(f"the test fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    train, test = [], []
    for item in items:
        (test if _bucket(key(item), seed) < test_fraction else train).append(item)
    return train, test


def split_examples(examples: Iterable[PreferenceExample], test_fraction: float,
                   seed: int = 0) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    """(train, test) preference pairs by prompt (`split_by_prompt`)."""
    return split_by_prompt(examples, test_fraction, seed, key=lambda example: example.prompt)


def split_file(src: PathLike, out_dir: PathLike, test_fraction: float, seed: int = 0,
               fmt: Optional[str] = None) -> tuple[int, int]:
    """Split a preference file by prompt into out_dir/train.jsonl and out_dir/test.jsonl (the pairs as read,
    in explicit or conversational form). Returns (train pairs, test pairs); an empty side is an error."""
    examples = load_preferences(src, fmt)
    train, test = split_examples(examples, test_fraction, seed)
    if not train or not test:
        side = "test" if not test else "train"
        distinct = len({prompt_key(e.prompt) for e in examples})
        raise DataError(f"the {side} part would be empty ({distinct} distinct prompts at test fraction "
                        f"{test_fraction}); use more data, another fraction or another seed")
    out = Path(out_dir)
    return write_jsonl(out / "train.jsonl", train), write_jsonl(out / "test.jsonl", test)
