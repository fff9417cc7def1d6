"""The README, the changelog and the manual point only at things inside this repository, and those things exist.

A reader of a fresh clone has nothing else: a path into a neighbouring folder (`../shared/...`), an absolute path of
one machine (`/work/...`) or a style guide kept outside the repository is a dead end for them. Every repository path
the docs name in backticks (`src/...`, `tests/...`, `bench/...`, `configs/...`, `scripts/...`, `docs/...` ending
in a file extension; also a package path such as `models/load.py`, read under src/rlhfkit/) and every relative
Markdown link must exist. When a test here fails, fix the docs (or the file they name), not the test.
"""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "rlhfkit"
DOCS = sorted([REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").rglob("*.md")])

OUTSIDE = [("../shared", "a folder next to the repository"), ("/work/", "an absolute path of one machine"),
           ("ARCHITECTURE.md", "a style guide outside the repository (docs/architecture.md is the one inside)")]
ROOTS = ("src", "tests", "bench", "configs", "scripts", "docs")
SUBPACKAGES = tuple(sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))))
# a path-like token, not glued to a preceding path character: a repository path ending in a file extension, or a
# package path ending in .py (`data/train.jsonl` in a command is the user's file, `data/io.py` is ours)
PATH = re.compile(r"(?<![\w./~$-])((?:%s)/[\w./-]*\.[A-Za-z0-9]+|(?:%s)/[\w./-]*\.py\b)"
                  % ("|".join(ROOTS), "|".join(SUBPACKAGES)))
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)          # fenced blocks and inline code spans
LINK = re.compile(r"\]\(([^)\s]+)\)")
# recipes name files a reader is to create: `src/rlhfkit/trainers/NEW.py`, `configs/NEW/*.yaml`
PLACEHOLDER = re.compile(r"(^|/)NEW(\.|/|$)|[*<>{}]")


def _rel(doc: Path) -> str:
    return str(doc.relative_to(REPO))


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def repo_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) for every repository path named inside backticks or a fenced block."""
    found = []
    for span in CODE.finditer(text):
        for m in PATH.finditer(span.group(0)):
            path = m.group(1).rstrip(".")
            if not PLACEHOLDER.search(path):
                found.append((_line(text, span.start() + m.start(1)), path))
    return found


def exists(path: str) -> bool:
    if path.split("/")[0] in ROOTS:
        return (REPO / path).exists()
    return (PACKAGE / path).exists()        # models/load.py -> src/rlhfkit/models/load.py


def relative_links(text: str) -> list[tuple[int, str]]:
    """(line, target) of Markdown links that point into the repository (no scheme, no bare #anchor)."""
    out = []
    for m in LINK.finditer(CODE.sub(lambda s: " " * len(s.group(0)), text)):
        target = m.group(1).split("#")[0]
        if target and not re.match(r"^[a-z]+:", target):
            out.append((_line(text, m.start(1)), target))
    return out


def test_the_docs_are_found():
    names = {_rel(d) for d in DOCS}
    assert {"README.md", "CHANGELOG.md", "docs/architecture.md", "docs/experiments/README.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_no_reference_outside_the_repository(doc):
    text = doc.read_text()
    bad = [f"{_rel(doc)}:{_line(text, m.start())}: {needle} ({why})"
           for needle, why in OUTSIDE for m in re.finditer(re.escape(needle), text)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_named_repository_paths_exist(doc):
    text = doc.read_text()
    missing = [f"{_rel(doc)}:{line}: `{path}` does not exist" for line, path in repo_paths(text) if not exists(path)]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_relative_links_resolve(doc):
    text = doc.read_text()
    missing = [f"{_rel(doc)}:{line}: link to {target} does not resolve"
               for line, target in relative_links(text) if not (doc.parent / target).exists()]
    assert not missing, "\n".join(missing)


def test_the_checks_catch_what_they_are_for():
    """The readers above are only as good as their patterns: a dead path, a placeholder, a path glued to another
    folder, an outside reference and a dead link."""
    text = ("See `src/rlhfkit/nowhere.py`, `models/load.py`, `bench/dpo.py --trl` and `configs/NEW/*.yaml`;\n"
            "```sh\nrlhfkit ppo --config configs/ppo/lora.yaml\n.venv/bin/python bench/rm.py\n```\n"
            "Not code: src/rlhfkit/free.py. Glued: `runs/docs/x.md`, `~/.cache/rlhfkit/models/m.json`.\n"
            "User files: `--prompts data/train.jsonl -o eval/out.json`.\n"
            "[a](docs/missing.md) [b](https://example.org/x.md) [c](#anchor)\n")
    assert repo_paths(text) == [(1, "src/rlhfkit/nowhere.py"), (1, "models/load.py"), (1, "bench/dpo.py"),
                                (3, "configs/ppo/lora.yaml"), (4, "bench/rm.py")]
    assert [p for _, p in repo_paths(text) if not exists(p)] == ["src/rlhfkit/nowhere.py"]
    assert relative_links(text) == [(8, "docs/missing.md")]
    assert any(needle in "data in ../shared/data/x.jsonl" for needle, _ in OUTSIDE)
