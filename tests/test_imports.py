"""Import hygiene: every module imports; the pure layers stay light; the import graph has no cycles and no arrow
that runs up the layers of docs/architecture.md.

The graph is read from the source (every `import` and `from ... import`, also those inside functions), so a lazy
import counts as much as a top-level one: laziness is for speed, not a licence to reach upwards.
"""
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# docs/architecture.md, bottom to top: a module may import its own package and packages of lower layers only
LAYERS = [
    ["rlhfkit.errors", "rlhfkit.types", "rlhfkit.files", "rlhfkit.console"],
    ["rlhfkit.losses"],
    ["rlhfkit.config", "rlhfkit.data"],
    ["rlhfkit.models"],
    ["rlhfkit.rollout", "rlhfkit.judges"],
    ["rlhfkit.trainers"],
    ["rlhfkit.eval", "rlhfkit.collect"],
    ["rlhfkit.demo"],
    ["rlhfkit"],                 # the package's own __init__: the Python API, re-exported lazily
    ["rlhfkit.cli"],
]
RANK = {unit: r for r, units in enumerate(LAYERS) for unit in units}
# names kept for one release so old scripts keep working; rlhfkit's own code must not import them
ALIASES = {"rlhfkit.trainers.loop", "rlhfkit.models.lean", "rlhfkit.models.attention", "rlhfkit.models.logprobs"}


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted((SRC / "rlhfkit").rglob("*.py")):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def unit_of(module: str) -> str:
    """The layer unit of a module: its top-level package or module under rlhfkit (rlhfkit.data.io -> rlhfkit.data)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """rlhfkit modules `module` imports anywhere in its source (`from rlhfkit import x` names module rlhfkit.x)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rlhfkit"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "rlhfkit":
                continue
            if base == "rlhfkit" and all(a.name.startswith("__") for a in node.names):
                continue        # __version__: metadata of the package every submodule's import loads anyway
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            found |= subs or {base}
            if len(subs) < len(node.names):
                found.add(base)
    found.discard(module)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports_of(m, p, known) if i in known} for m, p in mods.items()}


@pytest.mark.parametrize("name", [m for m in modules() if not m.endswith("__main__")])
def test_every_module_imports(name):
    importlib.import_module(name)


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}          # 1 = on the current path, 2 = done
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(g[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n] if n in path else [m, n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_nothing_imports_upwards_or_through_the_old_names():
    upward, aliased = [], []
    for m, deps in graph().items():
        for d in deps:
            a, b = unit_of(m), unit_of(d)
            if d in ALIASES and m not in ALIASES:
                aliased.append(f"{m} -> {d}")
            if a == b or m in ALIASES:
                continue
            if RANK[b] >= RANK[a]:
                upward.append(f"{m} ({a}, layer {RANK[a]}) -> {d} ({b}, layer {RANK[b]})")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))
    assert not aliased, "imports of names kept only for old scripts:\n" + "\n".join(sorted(aliased))


def test_every_package_has_a_layer():
    assert {unit_of(m) for m in modules()} <= set(RANK)


def _fresh_modules(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_losses_import_torch_only():
    loaded = _fresh_modules("import rlhfkit.losses, rlhfkit.losses.preference, rlhfkit.losses.ppo, "
                            "rlhfkit.losses.advantages, rlhfkit.losses.kl, rlhfkit.losses.masked")
    heavy = {"transformers", "accelerate", "datasets", "peft"} & {m.split(".")[0] for m in loaded}
    assert not heavy, heavy
    assert not any(m.startswith("rlhfkit.") and not m.startswith("rlhfkit.losses") for m in loaded)


def test_cli_and_collect_stats_start_without_torch():
    for statement in ("import rlhfkit.cli", "import rlhfkit.collect.quality, rlhfkit.collect.export"):
        top = {m.split(".")[0] for m in _fresh_modules(statement)}
        assert not top & {"torch", "transformers", "accelerate", "datasets"}, (statement, top)


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path):
    """The checks above are only as good as the reader: it must see an import inside a function and a relative one."""
    pkg = tmp_path / "rlhfkit" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    f = pkg / "a.py"
    f.write_text("def f():\n    from rlhfkit.trainers import run\n\nfrom . import b\nfrom .b import x\n")
    known = {"rlhfkit.trainers", "rlhfkit.trainers.run", "rlhfkit.sub", "rlhfkit.sub.b"}
    assert imports_of("rlhfkit.sub.a", f, known) == {"rlhfkit.trainers.run", "rlhfkit.sub.b"}
