"""An on-disk cache of verdicts, so that a rerun (or a run after a crash) never asks the judge twice.

One JSON object per line, appended and flushed as each verdict arrives:
    {"key": sha256 of [prompt, response_a, response_b, judge_id], "judge_id", "winner", "confidence", "raw"}
The order of the two responses is part of the key: (a, b) and (b, a) are two different questions.
Failed verdicts (winner None) are not stored, so a rerun asks them again (a timeout is often transient).
A line cut off by a crash is ignored on reading, and the next write starts on a fresh line.
Safe to share between the threads of one process (one lock); not between processes writing at once.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Optional

from rlhfkit.judges.base import WINNERS, Verdict


def cache_key(prompt: Any, response_a: Any, response_b: Any, judge_id: str) -> str:
    """sha256 of the canonical JSON of [prompt, response_a, response_b, judge_id]."""
    text = json.dumps([prompt, response_a, response_b, judge_id], ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VerdictCache:
    """`get` / `put` verdicts by (prompt, a, b, judge id); `hits` and `stored` count this session's use."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self.skipped_lines = 0
        self.hits = 0
        self.stored = 0
        needs_newline = False
        if self.path.is_file():
            data = self.path.read_bytes()
            needs_newline = bool(data) and not data.endswith(b"\n")
            for line in data.splitlines():
                try:
                    entry = json.loads(line)
                    if entry.get("winner") in WINNERS and isinstance(entry.get("key"), str):
                        self._entries[entry["key"]] = entry
                        continue
                except (ValueError, AttributeError):
                    pass
                if line.strip():
                    self.skipped_lines += 1
        self._file = open(self.path, "a", encoding="utf-8")
        if needs_newline:  # a crash cut the last line: do not glue the next entry onto it
            self._file.write("\n")
            self._file.flush()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, prompt: Any, response_a: Any, response_b: Any, judge_id: str) -> Optional[Verdict]:
        entry = self._entries.get(cache_key(prompt, response_a, response_b, judge_id))
        if entry is None:
            return None
        with self._lock:
            self.hits += 1
        return Verdict(entry["winner"], entry.get("confidence"), entry.get("raw"), entry.get("judge_id", judge_id))

    def put(self, prompt: Any, response_a: Any, response_b: Any, verdict: Verdict) -> None:
        """Store a verdict (written and flushed at once); failed verdicts are not stored."""
        if verdict.winner not in WINNERS:
            return
        key = cache_key(prompt, response_a, response_b, verdict.judge_id)
        entry = {"key": key, **verdict.to_dict()}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self._entries[key] = entry
            self._file.write(line)
            self._file.flush()
            self.stored += 1

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> "VerdictCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
