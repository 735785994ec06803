"""Every module under trainer/analysis imports without Lightning: a report or a finding's
verdicts are rebuilt from the records on disk, in a process that never trains."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIGHTNING = ("lightning", "pytorch_lightning")

# in a fresh interpreter: import every module of the package, then name the Lightning modules
# loaded (one line each) after the count of modules imported
IMPORT_ALL = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(len(names))
print("\\n".join(m for m in {lightning} if m in sys.modules))
"""


def lightning_after_import(package: str, path: Path) -> tuple[int, list[str]]:
    """How many modules of ``package`` (found on ``path``) a fresh interpreter imported, and
    which Lightning modules that loaded."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL.format(lightning=LIGHTNING), package],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    count, *loaded = result.stdout.split()
    return int(count), loaded


def test_every_analysis_module_imports_without_lightning():
    count, loaded = lightning_after_import("trainer.analysis", ROOT)
    assert count >= 10  # the walk found the modules (findings/ included)
    assert loaded == []


def test_the_check_sees_a_module_that_imports_lightning(tmp_path):
    package = tmp_path / "probe"
    (package / "deep").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "deep" / "__init__.py").write_text("")
    (package / "deep" / "trains.py").write_text("import lightning\n")
    # a stand-in named lightning, first on the path: the check goes by the module's name, and
    # the real one would cost this test its ~6 s import
    (tmp_path / "lightning").mkdir()
    (tmp_path / "lightning" / "__init__.py").write_text("")
    assert lightning_after_import("probe", tmp_path) == (2, ["lightning"])
