"""The package's layers import one way (../shared/STYLE.md): config → data → model (+ kernels)
→ search → train | evaluate | analysis → translator → serve | cli; nothing imports cli; and
torch-private APIs appear only in nmt/kernels/; files stay short."""

import ast
import re
from pathlib import Path

import pytest

import nmt

PACKAGE = Path(nmt.__file__).parent
# a module may import modules of its own rank or lower
RANKS = {
    "nmt": 0,
    "nmt.errors": 0,
    "nmt.resources": 0,
    "nmt.config": 1,
    "nmt.config_checks": 1,
    "nmt.rundir": 2,
    "nmt.data": 2,
    "nmt.kernels": 3,
    "nmt.model": 4,
    "nmt.search": 5,
    "nmt.train": 6,
    "nmt.evaluate": 6,
    "nmt.analysis": 6,
    "nmt.translator": 7,
    "nmt.members": 7,
    "nmt.serve": 8,
    "nmt.cli": 9,
}
# `from nmt import Translator`: nmt/__init__.py re-exports the API on first use (PEP 562
# __getattr__), the one import allowed to point upwards, and only where `import nmt` does not
# run it (inside a function, or under `if TYPE_CHECKING:`)
LAZY = ("nmt", "nmt.translator")
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


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    return []


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        yield from _names(node)


def _eager_imports(path: Path) -> set[str]:
    """The modules importing path runs: not those inside a function or `if TYPE_CHECKING:`."""
    found, todo = set(), [ast.parse(path.read_text(encoding="utf-8"))]
    while todo:
        for child in ast.iter_child_nodes(todo.pop()):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) or (
                isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING"
            ):
                continue
            found.update(_names(child))
            todo.append(child)
    return found


def _wrong_imports(name: str, path: Path) -> list[str]:
    """The imports of module `name` (file path) that point against the layer order."""
    here, wrong = _layer(name), []
    for target in _imports(path):
        if target == "nmt" or not target.startswith("nmt."):
            continue
        if (name, target) == LAZY and target not in _eager_imports(path):
            continue
        there = _layer(target)
        if RANKS[there] > RANKS[here] or (there == "nmt.cli" and here != "nmt.cli"):
            wrong.append(f"{path} imports {target}")
    return wrong


def test_no_import_points_against_the_layer_order():
    wrong = [w for name, path in _modules() for w in _wrong_imports(name, path)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "source",
    [
        "import nmt.translator\n",  # run by `import nmt`
        "from nmt.translator import Translator\n",
        "def __getattr__(name):\n    import nmt.model\n",  # lazy, but not the API
        "def __getattr__(name):\n    import nmt.cli.translate\n",
    ],
)
def test_only_the_lazy_api_re_export_may_point_upwards(source, tmp_path):
    path = tmp_path / "__init__.py"
    path.write_text(source)
    assert _wrong_imports("nmt", path)


def test_the_lazy_api_re_export_is_allowed(tmp_path):
    path = tmp_path / "__init__.py"
    path.write_text(
        "if TYPE_CHECKING:\n    from nmt.translator import Translator\n"
        "def __getattr__(name):\n    import nmt.translator\n"
    )
    assert not _wrong_imports("nmt", path)


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
    ours = [p for p in bench.rglob("*.py") if ".venv" not in p.parts]  # not the peers' venvs
    files = [*PACKAGE.rglob("*.py"), *ours]
    long = {
        str(p): n for p in files if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, long
