"""Tiny copies of the built-in data written as the file layouts the file datamodules read, so the
tests of ``data=image_folder`` and its kin need no real data and no network.

``EXPORTS`` maps a data config's name to the function that writes its layout into a directory;
:func:`ensure` (called once per test session by ``tests/conftest.py``) writes each into
:func:`root` ``(name)`` under the git-ignored ``<repo>/.cache/test-data/`` unless a marker file
says that the same sources already did (the marker holds a hash of this module, the IDX fixture
and ``datasets/``, so a changed reader, writer or built-in dataset exports again). A layout is
written into a temporary folder and renamed into place: an interrupted session leaves no half
layout behind. Sessions that export at once (the workers of ``pytest -n``, or two sessions on
one checkout) take turns on a lock file: the first to hold it writes what is stale, the others
then find it current, so none removes a layout that another has started reading.
"""

import fcntl
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dense_file_data

from datasets.export import export
from datasets.regression import RegressionDataModule

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / ".cache" / "test-data"
DATASETS = REPO / "datasets"
MARKER = ".exported"

# the fake MNIST of ``tests/idx_fixture.py`` the classification layout is exported from: the
# ``fake_mnist_dir`` fixture's files, split as TINY_DATA splits ``data=mnist``
FAKE_MNIST = dict(n_train=600, n_test=200)
MNIST_VAL_SIZE = 100


def fake_mnist(data_dir: Path) -> Any:
    """The built-in ``data=mnist`` datamodule on the fake IDX files written into ``data_dir``."""
    from idx_fixture import write_fake_idx

    from datasets.mnist import MNISTDataModule

    write_fake_idx(data_dir, **FAKE_MNIST)
    return MNISTDataModule(data_dir=str(data_dir), download=False, val_size=MNIST_VAL_SIZE)


def export_image_folder(out_dir: Path) -> None:
    """The whole fake MNIST (500 train, 100 val, 200 test images) as ``out_dir/<split>/<class>/``."""
    from datasets.export import export

    with tempfile.TemporaryDirectory() as data_dir:
        export(fake_mnist(Path(data_dir)), out_dir)


# the built-in glyphs the retrieval layout is exported from: TINY_DATA's data=retrieval
GLYPHS = dict(n_classes=12, n_train_classes=8, samples_per_class=8)


def glyphs() -> Any:
    """The built-in ``data=retrieval`` datamodule at the size of its tiny budget."""
    from datasets.retrieval import RetrievalDataModule

    return RetrievalDataModule(**GLYPHS, p=4, k=2)


def export_retrieval_folder(out_dir: Path) -> None:
    """The tiny glyphs (8 training classes of 8, 4 held-out classes of 4 + 4) as
    ``out_dir/<split>/<class>/``, each pixel rounded to 8 bits."""
    from datasets.export import export

    export(glyphs(), out_dir)


# data config name -> the function that writes that layout into the directory it is given
EXPORTS: dict[str, Callable[[Path], None]] = {
    "box_csv": dense_file_data.write_box_csv,
    "clean_folder": dense_file_data.write_clean_folder,
    "image_folder": export_image_folder,
    "mask_folder": dense_file_data.write_mask_folder,
    "retrieval_folder": export_retrieval_folder,
    # data=table: data=regression at its TINY_DATA sizes, as one CSV with a split column
    "table": lambda out_dir: export(
        RegressionDataModule(n_train=256, n_val=64, n_test=64), out_dir
    ),
}


def root(name: str) -> Path:
    """Where the layout of data config ``name`` is exported (``data.root`` of its tests)."""
    return TEST_DATA / name


def _version() -> str:
    """A hash of the sources an export depends on: this module, the IDX fixture, the dense
    layouts' writers and the datasets package (readers, writers and the built-in data)."""
    digest = hashlib.sha256()
    tests = REPO / "tests"
    sources = [Path(__file__), tests / "idx_fixture.py", tests / "dense_file_data.py"]
    for path in [*sources, *sorted(DATASETS.glob("*.py"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure(names: list[str] | None = None) -> None:
    """Export every layout of ``EXPORTS`` (or those of ``names``) not yet exported by the
    current writers."""
    version = _version()
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    with open(TEST_DATA / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        for name in names or sorted(EXPORTS):
            export, target = EXPORTS[name], root(name)
            marker = target / MARKER
            if marker.is_file() and marker.read_text() == version:
                continue
            staging = Path(tempfile.mkdtemp(dir=TEST_DATA, prefix=f".{name}-"))
            try:
                export(staging)
                (staging / MARKER).write_text(version)
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
