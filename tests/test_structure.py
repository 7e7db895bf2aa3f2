"""The package's shape: modules import one another one way (no cycle, counting imports inside
functions, which hide cycles rather than remove them), and notebooks import only what they use."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "resnet_nb"
BOOK = PACKAGE.parent / "book"


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
    return nodes


def package_imports(folder: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports, anywhere in its body (``from .x import``, ``from . import x``)."""
    modules = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps: set[str] = set()
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{folder.name}."):
                deps.add(node.module.split(".")[1])
        graph[path.stem] = (deps & modules) - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep] if dep in path else [node, dep]
            if dep not in state and (cycle := visit(dep, path + [dep])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_find_cycle_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"bench": {"__main__"}, "__main__": {"bench"}}) == ["__main__", "bench", "__main__"]


def test_package_imports_are_read_from_function_bodies_too(tmp_path: Path) -> None:
    pkg = tmp_path / "resnet_nb"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from . import a\nimport resnet_nb.c\nfrom resnet_nb.c import x\n")
    (pkg / "c.py").write_text("")
    assert package_imports(pkg) == {"a": {"b"}, "b": {"a", "c"}, "c": set()}
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\nelse:\n    from .b import g\n")
    assert package_imports(pkg)["c"] == {"b"}  # an import for annotations only is not a dependency


def test_no_import_cycle_in_the_package() -> None:
    graph = package_imports()
    assert {"records", "grids", "coverage", "estimate", "bench", "__main__"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
    assert "__main__" not in set().union(*graph.values()), "only the interpreter imports __main__"
    # the layers: records know nothing of grids or analysis; the runner (grids) knows nothing of the book's
    # analysis; the training engine (train, stacked) knows nothing of runs, records or the runner
    assert not graph["records"] & {"grids", "estimate", "coverage", "claims", "plots", "analysis"}
    assert not graph["grids"] & {"estimate", "coverage", "claims", "plots", "analysis"}
    for engine in ("train", "stacked"):
        assert not graph[engine] & {"grids", "records", "estimate", "coverage", "__main__"}, engine
    assert "train" not in graph["stacked"] or "stacked" not in graph["train"]


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def unused_imports(code: str) -> list[str]:
    """Names a notebook imports (at its top level) and never uses."""
    tree = ast.parse(code)
    imported: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported[(alias.asname or alias.name).split(".")[0]] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    return sorted(name for name in imported if name not in used)


def test_unused_imports_finds_a_planted_one() -> None:
    assert unused_imports("import os\nfrom a import b, c\nb.x()\n") == ["c", "os"]
    assert unused_imports("from resnet_nb import plots\nplots.caption(df)\n") == []


@pytest.mark.parametrize("notebook", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_import_only_what_they_use(notebook: Path) -> None:
    assert unused_imports(notebook_code(notebook)) == []


def test_every_planted_bug_still_has_its_target() -> None:
    """scripts/plant_bugs.py plants each bug by text: a pattern that no longer occurs exactly once would
    silently plant nothing, so the list must follow the code."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("plant_bugs", PACKAGE.parent / "scripts" / "plant_bugs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(module.MUTANTS) >= 20 and len({m[0] for m in module.MUTANTS}) == len(module.MUTANTS)
    for name, path, old, new in module.MUTANTS:
        assert old != new, name
        assert (PACKAGE.parent / path).read_text().count(old) == 1, f"{name}: its pattern is not in {path} once"


# The two halves (README, "Architecture"): the evidence half reads records (JSON) by the vocabulary's names and
# must load where no torch is installed; the training half makes the records. The vocabulary is the bottom.
VOCABULARY = "vocab"
EVIDENCE = ("records", "stats", "readings", "claims", "robustness", "forest", "facts", "coverage", "plots", "tables")
TRAINING = ("models", "data", "train", "stacked", "checkpoints", "grids", "estimate", "provenance", "bench",
            "akamaster", "analysis", "paper", "live", "widgets", "__main__")


def third_party_imports(source: str) -> set[str]:
    """Top-level names of the absolute imports a module makes at run time."""
    nodes = runtime_nodes(ast.parse(source))
    names = {a.name.split(".")[0] for n in nodes if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module.split(".")[0] for n in nodes if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module}


def test_the_vocabulary_is_the_bottom_and_the_evidence_half_stands_on_it_alone() -> None:
    graph = package_imports()
    assert set(EVIDENCE) | set(TRAINING) | {VOCABULARY} <= set(graph)
    assert graph[VOCABULARY] == set(), "the vocabulary imports nothing of the package"
    for module in EVIDENCE:
        assert graph[module] <= set(EVIDENCE) | {VOCABULARY}, \
            f"{module} (evidence half) imports {sorted(graph[module] - set(EVIDENCE) - {VOCABULARY})}"
    for module in (VOCABULARY, *EVIDENCE):
        assert not third_party_imports((PACKAGE / f"{module}.py").read_text()) & {"torch", "torchvision"}, module
    assert third_party_imports("import torch.nn\nfrom torchvision import models\n") == {"torch", "torchvision"}


NO_TORCH = '''
import sys

class NoTorch:
    """An environment without torch: importing it fails as it would where it is not installed."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the evidence half must not need it)")
        return None

sys.meta_path.insert(0, NoTorch())
'''


def test_the_evidence_half_loads_and_reads_records_without_torch(tmp_path: Path) -> None:
    """Import every evidence module with torch blocked, read the committed records, judge and draw from them;
    and check that the block bites (the training half does not import)."""
    import os
    import subprocess
    import sys

    script = NO_TORCH + f"""
import importlib
for name in {(VOCABULARY, *EVIDENCE)!r}:
    importlib.import_module("resnet_nb." + name)
from resnet_nb import claims, plots, records, vocab
df = records.load_results("paper8k")
assert len(df) and {{"iteration", "lr_drops"}} <= set(df.columns)
plots.paper_error_curves(df)
claims.ledger(records.load_results("report"), n_boot=200)
assert vocab.grid_runs("paper8k")[0].run_id == "resnet20-A_paper_it8000_s0"
assert "torch" not in sys.modules
try:
    import resnet_nb.train
except ModuleNotFoundError:
    print("ok")
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


def test_the_command_lines_read_only_answers_need_no_torch(tmp_path: Path) -> None:
    """`python -m resnet_nb models` and every --help answer at once: the command line loads only the
    vocabulary, and a command imports the training half when it runs (`models` counts from the shape)."""
    import os
    import subprocess
    import sys

    script = NO_TORCH + """
import contextlib, io
from resnet_nb.__main__ import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["models"]) == 0
    for args in (["--help"], ["grid", "run", "--help"], ["bench", "--help"], ["train", "--help"]):
        try:
            main(args)
        except SystemExit as exc:
            assert exc.code == 0, args
assert "resnet56-B" in out.getvalue() and "855,770" in out.getvalue() and "ours +compile" in out.getvalue()
assert "torch" not in sys.modules
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
