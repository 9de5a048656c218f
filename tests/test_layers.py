"""The package's layers import one way (../shared/STYLE.md): config → data → model (+ kernels)
→ search → train | evaluate | analysis → translator → serve | cli; nothing imports cli; and
torch-private APIs appear only in nmt/kernels/; files stay short."""

import ast
import re
from pathlib import Path

import nmt

PACKAGE = Path(nmt.__file__).parent
# a module may import modules of its own rank or lower
RANKS = {
    "nmt": 0,
    "nmt.errors": 0,
    "nmt.resources": 0,
    "nmt.config": 1,
    "nmt.rundir": 2,
    "nmt.data": 2,
    "nmt.kernels": 3,
    "nmt.model": 4,
    "nmt.search": 5,
    "nmt.train": 6,
    "nmt.evaluate": 6,
    "nmt.analysis": 6,
    "nmt.translator": 7,
    "nmt.serve": 8,
    "nmt.cli": 9,
}
PRIVATE = re.compile(r"torch\._VF|torch\.ops\.mkldnn|torch\.utils\._python_dispatch|\._version\b")


def _layer(module: str) -> str:
    """The RANKS entry a dotted module name belongs to (its longest listed prefix)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANKS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module}: in no layer of RANKS")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_import_points_against_the_layer_order():
    wrong = []
    for name, path in _modules():
        here = _layer(name)
        for target in _imports(path):
            if target == "nmt" or not target.startswith("nmt."):
                continue
            there = _layer(target)
            if RANKS[there] > RANKS[here] or (there == "nmt.cli" and here != "nmt.cli"):
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_torch_private_apis_only_in_kernels():
    found = [
        f"{path.relative_to(PACKAGE.parent)}: {m.group(0)}"
        for name, path in _modules()
        if not name.startswith("nmt.kernels")
        for m in PRIVATE.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_the_model_reads_in_one_sitting():
    """nmt/model/ holds the maths only: at most 600 lines in all."""
    lines = sum(
        len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "model").glob("*.py")
    )
    assert lines <= 600, lines


def test_no_source_file_over_400_lines():
    """STYLE.md's limit, for the package and the benchmarks alike."""
    bench = PACKAGE.parent / "bench"
    files = [*PACKAGE.rglob("*.py"), *(bench.rglob("*.py") if bench.is_dir() else [])]
    long = {
        str(p): n for p in files if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, long
