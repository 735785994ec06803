"""Tiny copies of the built-in data written as the file layouts the file datamodules read, so the
tests of ``data=image_folder`` and its kin need no real data and no network.

``EXPORTS`` maps a data config's name to the function that writes its layout into a directory;
:func:`ensure` (called once per test session by ``tests/conftest.py``) writes each into
:func:`root` ``(name)`` under the git-ignored ``<repo>/.cache/test-data/`` unless a marker file
says that the same writer already did (the marker holds a hash of the writer's source, so a
changed writer exports again). A layout is written into a temporary folder and renamed into
place: an interrupted session leaves no half layout behind.
"""

import hashlib
import inspect
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import dense_file_data

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / ".cache" / "test-data"
MARKER = ".exported"

# data config name -> the function that writes that layout into the directory it is given
EXPORTS: dict[str, Callable[[Path], None]] = {
    "box_csv": dense_file_data.write_box_csv,
    "clean_folder": dense_file_data.write_clean_folder,
    "mask_folder": dense_file_data.write_mask_folder,
}


def root(name: str) -> Path:
    """Where the layout of data config ``name`` is exported (``data.root`` of its tests)."""
    return TEST_DATA / name


def _version(export: Callable[[Path], None]) -> str:
    """A hash of this module's source and of the module the writer comes from."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(inspect.getsource(sys.modules[export.__module__]).encode())
    return digest.hexdigest()


def ensure(names: list[str] | None = None) -> None:
    """Export every layout of ``EXPORTS`` (or those of ``names``) not yet exported by the
    current writers."""
    for name in names or sorted(EXPORTS):
        export, target = EXPORTS[name], root(name)
        version = _version(export)
        marker = target / MARKER
        if marker.is_file() and marker.read_text() == version:
            continue
        TEST_DATA.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=TEST_DATA, prefix=f".{name}-"))
        try:
            export(staging)
            (staging / MARKER).write_text(version)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
