"""What a person sees on the terminal: one `note()` for messages, progress bars, peak memory.

Messages go to stderr with the `[rlhfkit]` prefix, so stdout stays clean for `--json` output and pipes; they are
written through tqdm so an active progress bar is redrawn below them instead of being torn.
"""
from __future__ import annotations

import sys
from typing import Any


def note(message: str) -> None:
    """One line (or a few) for the user on stderr, prefixed `[rlhfkit] `; safe beside a progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(f"[rlhfkit] {message}", file=sys.stderr)


def warn(message: str) -> None:
    """`note("warning: ...")`: something the user should act on, which does not stop the command."""
    note(f"warning: {message}")


def progress_bar(total: int, initial: int, desc: str, enabled: bool, unit: str = "step") -> Any:
    """A tqdm bar on stderr (disabled: a no-op object with the same methods)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                file=sys.stderr, unit=unit)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
