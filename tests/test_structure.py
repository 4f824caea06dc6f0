"""The package's shape, kept by tests: layers, no import cycles, no private names across modules,
modules that read in one sitting, and the notebook -> modules map (lmguide.NOTEBOOKS) that the
README repeats and every notebook follows."""
import ast
import json
import pathlib
import re

import pytest

import lmguide

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lmguide"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLUMBING = {"lmguide._util", "lmguide.zoo", "lmguide.data", "lmguide.qa_data", "lmguide.workers", "lmguide.sandbox"}
FRONT = {"lmguide", "lmguide.__main__", "lmguide.cli", "lmguide.plots", "lmguide.widgets", "lmguide.exercises", "lmguide.grading",
         "lmguide.course", "lmguide.assets"}
MAX_LINES = 500


def _module_name(file: pathlib.Path) -> str:
    parts = list(file.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(f): f for f in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    if module in PLUMBING:
        return "plumbing"
    if module == "lmguide.measure" or module.startswith("lmguide.measure."):
        return "measurement"
    if module in FRONT or module.startswith(("lmguide.exercise_bank", "lmguide.recipes")):
        return "front end"
    return "lesson"


ALLOWED = {"plumbing": {"plumbing"}, "lesson": {"plumbing", "lesson"},
           "measurement": {"plumbing", "lesson", "measurement"},
           "front end": {"plumbing", "lesson", "measurement", "front end"}}


def _defining_module(name: str) -> str:
    """Where a name imported from the package root lives (``from lmguide import load`` is zoo's)."""
    if f"lmguide.{name}" in MODULES:
        return f"lmguide.{name}"
    value = getattr(lmguide, name, None)
    return getattr(value, "__module__", "lmguide") or "lmguide"


def imports_of(source: str, module: str = "") -> list[tuple[str, int]]:
    """Every lmguide module ``source`` imports, top-level or inside a function (lazy), with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "lmguide"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "lmguide":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in MODULES:
                    found.append((full, node.lineno))
                elif node.module == "lmguide":
                    found.append((_defining_module(a.name), node.lineno))
                else:
                    found.append((node.module, node.lineno))
    return [(m, line) for m, line in found if m != module]


GRAPH = {m: {i for i, _ in imports_of(f.read_text(), m)} for m, f in MODULES.items()}


def test_every_import_goes_down_a_layer_or_stays_level():
    wrong = [f"{m} ({layer(m)}) imports {i} ({layer(i)})" for m, targets in GRAPH.items() for i in sorted(targets)
             if i in MODULES and layer(i) not in ALLOWED[layer(m)]]
    assert not wrong, "layering broken:\n" + "\n".join(wrong)


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_lazy_imports_included():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _private_uses(source: str, own: str) -> list[str]:
    """``module._name`` and ``from module import _name`` where module is another lmguide module."""
    tree = ast.parse(source)
    aliases = {}  # local name -> lmguide module
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lmguide"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "lmguide"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lmguide"):
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif a.name.startswith("_") and not a.name.startswith("__") and node.module != own and node.module != "lmguide._util":
                    bad.append(f"from {node.module} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                target = ".".join([aliases[value.id]] + chain[:-1])
                if target in MODULES and target != own:
                    bad.append(f"{target}.{node.attr}")
    return bad


def test_no_private_name_crosses_a_module():
    bad = {m: _private_uses(f.read_text(), m) for m, f in MODULES.items()}
    bad.update({str(s.relative_to(ROOT)): _private_uses(s.read_text(), "") for s in (ROOT / "scripts").glob("*.py")})
    assert not {k: v for k, v in bad.items() if v}


def test_the_private_name_finder_finds_one():
    assert _private_uses("from lmguide import zoo\nzoo._FOLDERS", "lmguide.cli") == ["lmguide.zoo._FOLDERS"]
    assert _private_uses("import lmguide as lg\nlg.zoo._resolve('a')", "") == ["lmguide.zoo._resolve"]
    assert _private_uses("from lmguide._util import safe_key", "lmguide.eval") == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_read_in_one_sitting(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (more than {MAX_LINES}): split it by job"


# --- the notebook -> modules map ----------------------------------------------------------------
def _code(nb: pathlib.Path) -> str:
    cells = json.loads(nb.read_text())["cells"]
    lines = []
    for c in cells:
        if c["cell_type"] == "code":
            lines += [l for l in "".join(c["source"]).splitlines() if not l.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def notebook_modules(source: str) -> set[str]:
    """The lmguide modules a notebook's code uses: imports, and ``lg.<module>`` attributes."""
    used = {m for m, _ in imports_of(source)}
    tree = ast.parse(source)
    roots = {a.asname or "lmguide" for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names if a.name == "lmguide"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in roots \
                and f"lmguide.{node.attr}" in MODULES:  # lg.setup, lg.load, lg.release_memory: the package's own API
            used.add(f"lmguide.{node.attr}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and isinstance(node.value.value, ast.Name) and node.value.value.id in roots:
            sub = f"lmguide.{node.value.attr}.{node.attr}"
            if sub in MODULES:
                used.add(sub)
    used.discard("lmguide")
    return {m for m in used if not any(o.startswith(m + ".") for o in used)}  # lg.measure.table: table, not measure


def test_every_notebook_has_a_row_and_every_row_names_real_modules():
    assert sorted(lmguide.NOTEBOOKS) == [nb.stem for nb in NOTEBOOKS]
    for row in lmguide.NOTEBOOKS.values():
        for module in row + lmguide.SHARED:
            assert f"lmguide.{module}" in MODULES, f"no module lmguide.{module}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_uses_only_its_rows_modules_and_shared_ones(nb):
    allowed = {f"lmguide.{m}" for m in lmguide.NOTEBOOKS[nb.stem] + lmguide.SHARED}
    allowed |= {m for m in MODULES if layer(m) == "plumbing" and m != "lmguide._util"}
    used = notebook_modules(_code(nb))
    outside = {m for m in used if m not in allowed and not any(m.startswith(a + ".") for a in allowed)}
    assert not outside, f"{nb.stem} uses {sorted(outside)}, which its row of lmguide.NOTEBOOKS does not name"
    assert _private_uses(_code(nb), "") == []


def test_the_notebook_checker_sees_imports_and_attributes():
    used = notebook_modules("import lmguide as lg\nfrom lmguide import probes\nlg.timing.time_call(f)\n"
                            "lg.measure.table.pareto_front(p)\nlg.load('x')\nlg._util.safe_key('k')\n")
    assert used == {"lmguide.probes", "lmguide.timing", "lmguide.measure.table", "lmguide._util"}


def test_readme_table_lists_the_same_modules_as_the_package_map():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\d\d_\w+)` \| ([^|]+) \| `exercise_bank/nb\d\d\.py` \|$", readme, re.M))
    assert sorted(rows) == sorted(lmguide.NOTEBOOKS)
    for nb, modules in rows.items():
        assert [m.strip(" `") for m in modules.split(",")] == list(lmguide.NOTEBOOKS[nb]), nb
