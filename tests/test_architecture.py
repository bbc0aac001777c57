"""The house rules, read from the package's own source: no import cycle (imports inside functions count), every
import runs down the layers, the loss-law core and the training package keep to themselves, no module over 400
lines and no function over 80, and the command line starts without numpy."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "scalepredict"

# docs/architecture.md: each module's layer; a module imports only modules of its own layer or below
LAYERS = [
    (0, ("scalepredict", "scalepredict.errors", "scalepredict.defaults", "scalepredict.files",
         "scalepredict.textfmt")),
    (1, ("scalepredict.config", "scalepredict.flops", "scalepredict.runs", "scalepredict.frontier",
         "scalepredict.plan")),
    (2, ("scalepredict.core", "scalepredict.ingest", "scalepredict.fit")),
    (3, ("scalepredict.capability", "scalepredict.train", "scalepredict.forecast")),
    (4, ("scalepredict.fitfile", "scalepredict.annealed")),
    (5, ("scalepredict.summary", "scalepredict.plots", "scalepredict.report")),
    (6, ("scalepredict.pipeline",)),
    (7, ("scalepredict.cli", "scalepredict.__main__")),
]
# packages of one layer that must not import each other
APART = [("scalepredict.core", "scalepredict.ingest"), ("scalepredict.capability", "scalepredict.train")]
# third-party modules only some packages may import
ONLY = {"torch": ("scalepredict.train",), "matplotlib": ("scalepredict.plots",),
        "lmfit": ("scalepredict.core",)}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, at the top or inside a function, absolute names."""
    is_pkg = path.name == "__init__.py"
    base = name if is_pkg else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1])
                target += "." + node.module if node.module else ""
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{a.name}" for a in node.names}
    return out


def _owner(mod: str, mods) -> str | None:
    while mod and mod not in mods:
        mod = mod.rsplit(".", 1)[0] if "." in mod else ""
    return mod or None


def _layer(mod: str) -> int:
    best = None
    for level, prefixes in LAYERS:
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (level, p)
    assert best is not None, f"{mod} has no layer in tests/test_architecture.py (and docs/architecture.md)"
    return best[0]


def _graph():
    mods = _modules()
    edges = {}
    for name, path in mods.items():
        targets = set()
        for imp in _imports(name, path):
            if imp.startswith("scalepredict"):
                t = _owner(imp, mods)
                if t and t != name and not name.startswith(t + "."):  # a package's own face is not an edge
                    targets.add(t)
        edges[name] = targets
    return mods, edges


def test_no_import_cycle():
    mods, edges = _graph()
    seen, on_stack, cycles = {}, [], []

    def visit(v):
        seen[v] = "open"
        on_stack.append(v)
        for w in edges[v]:
            if seen.get(w) == "open":
                cycles.append(on_stack[on_stack.index(w):] + [w])
            elif w not in seen:
                visit(w)
        on_stack.pop()
        seen[v] = "done"

    for v in sorted(mods):
        if v not in seen:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_import_runs_down_the_layers():
    _, edges = _graph()
    upward = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
              for a, targets in edges.items() for b in targets if _layer(b) > _layer(a)]
    assert not upward, "\n".join(upward)
    apart = [f"{a} imports {b}" for a, targets in edges.items() for b in targets for x, y in APART
             if (a.startswith(x) and b.startswith(y)) or (a.startswith(y) and b.startswith(x))]
    assert not apart, "\n".join(apart)


def test_the_core_and_train_keep_to_themselves():
    mods = _modules()
    bad = []
    for name, path in mods.items():
        imps = _imports(name, path)
        for lib, allowed in ONLY.items():
            if any(i == lib or i.startswith(lib + ".") for i in imps) and not name.startswith(allowed):
                bad.append(f"{name} imports {lib} (only {', '.join(allowed)} may)")
        if name.startswith("scalepredict.train"):
            bad += [f"{name} imports {i}" for i in imps if i.startswith(("scalepredict.core", "scalepredict.fit",
                                                                          "scalepredict.capability"))]
    assert not bad, "\n".join(bad)


def test_no_module_over_400_lines_and_no_function_over_80():
    long_modules, long_functions = [], []
    for name, path in _modules().items():
        text = path.read_text()
        if text.count("\n") > 400:
            long_modules.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long_functions.append(f"{name}.{node.name}: {n} lines")
    assert not long_modules and not long_functions, long_modules + long_functions


def test_the_command_line_starts_without_numpy():
    """`scalepredict --help` and an argument error import no numpy (nor any log reader)."""
    script = ("import sys\nfrom scalepredict.cli import main\n"
              "for argv in (['--help'], ['fit', '--help'], ['predict', '--level', 'x', 'f.json']):\n"
              "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'yaml', 'scipy', 'lmfit')))")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-500:]


def test_the_names_the_command_line_offers_are_the_registries_own():
    from scalepredict import defaults
    from scalepredict.core.laws import LAWS
    from scalepredict.ingest.registry import READERS

    assert tuple(defaults.LAW_NAMES) == tuple(LAWS)
    assert tuple(defaults.LOG_FORMATS) == tuple(r.name for r in READERS)


@pytest.mark.parametrize("name", ["scalepredict.fit", "scalepredict.runs"])
def test_the_public_entry_points_people_use_are_kept(name):
    import importlib

    mod = importlib.import_module(name)
    assert callable(getattr(mod, "fit_law" if name.endswith("fit") else "load_runs"))
