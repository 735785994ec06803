"""The repository's shape, as README's "Layout" promises it: rooms small enough to enter alone,
every module saying what it owns, public APIs of other libraries only."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trainer", "hydra_plugins", "losses", "datasets")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MODULES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_a_module_is_small_and_says_what_it_owns(path: Path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring and docstring.splitlines()[0].strip(), "no module docstring"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


CODE = sorted(
    p for p in [ROOT / "train.py", *MODULES, *(ROOT / "scripts").glob("*.py")] if p.suffix == ".py"
)
# private OmegaConf node access, and a logger's method replaced on an instance
FORBIDDEN = {
    "OmegaConf's private _get_node": re.compile(r"\._get_node\("),
    "a logger method assigned": re.compile(
        r"\blogger\w*\.(finalize|log_metrics|log_hyperparams|save|experiment)\s*=[^=]"
    ),
    "Hydra's _internal": re.compile(r"^\s*(from|import) hydra\._internal", re.M),
}


@pytest.mark.parametrize("path", CODE, ids=relative)
def test_no_private_internals_of_other_libraries(path: Path):
    source = path.read_text()
    found = [what for what, pattern in FORBIDDEN.items() if pattern.search(source)]
    assert not found


def test_the_forbidden_patterns_match_what_they_name():
    assert FORBIDDEN["OmegaConf's private _get_node"].search("walk(value._get_node(key))")
    assert FORBIDDEN["a logger method assigned"].search("    logger.finalize = tolerant")
    assert not FORBIDDEN["a logger method assigned"].search("if logger.finalize == other:")
    assert FORBIDDEN["Hydra's _internal"].search("from hydra._internal.utils import x")
