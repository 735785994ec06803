"""``data=retrieval_folder``: the exported glyphs read back as the built-in splits (pixels rounded
to 8 bits, labels, order); class folders split into disjoint training and held-out classes, the
held-out ones halved into val and test, seeded; P x K training batches."""

import shutil
from pathlib import Path

import file_data
import pytest
import torch

from datasets.errors import DataError
from datasets.retrieval_folder import RetrievalFolderDataModule

SPLITS = ("train", "val", "test")


def folder(root: Path, tmp_path: Path, **options) -> RetrievalFolderDataModule:
    options = {"p": 4, "k": 2, **options}
    datamodule = RetrievalFolderDataModule(
        root=str(root), cache_dir=str(tmp_path / "cache"), **options
    )
    datamodule.setup()
    return datamodule


@pytest.fixture
def flat_root(tmp_path: Path) -> Path:
    """Every exported image in the class-folder layout ``root/<class>/<split>-<i>.png``."""
    flat = tmp_path / "flat"
    for path in file_data.root("retrieval_folder").glob("*/*/*.png"):
        (flat / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, flat / path.parent.name / f"{path.parent.parent.name}-{path.name}")
    return flat


def test_the_export_reads_back_as_the_built_in_splits(tmp_path: Path):
    builtin = file_data.glyphs()
    builtin.setup()
    files = folder(file_data.root("retrieval_folder"), tmp_path)
    assert files.class_names == [f"{c:02d}" for c in range(12)]
    assert (files.in_channels, files.image_size, files.num_outputs) == (1, 28, None)
    for split in SPLITS:
        expected, got = builtin.splits[split], files.splits[split]
        assert torch.equal(got.targets, expected.targets), split
        # glyphs are floats in [0, 1]: the PNGs hold them rounded to 8 bits
        assert torch.equal(got.inputs, (expected.inputs * 255).round().to(torch.uint8)), split
        batch, _ = got.__getitems__(list(range(len(got))))
        torch.testing.assert_close(batch, expected.inputs, rtol=0, atol=0.5 / 255 + 1e-7)
    assert files.data_stats == {"class_counts": [8] * 8 + [0] * 4}


def test_class_folders_hold_out_disjoint_classes_halved_into_val_and_test(
    flat_root: Path, tmp_path: Path
):
    datamodule = folder(flat_root, tmp_path, test_classes=4)
    classes = {s: set(datamodule.splits[s].targets.tolist()) for s in SPLITS}
    assert len(classes["train"]) == 8 and classes["val"] == classes["test"]
    assert not classes["train"] & classes["val"]
    # every class has 8 images: a held-out one gives 4 to val and 4 to test, a training one keeps 8
    for split, per_class in (("train", 8), ("val", 4), ("test", 4)):
        counts = torch.bincount(datamodule.splits[split].targets, minlength=12)
        assert sorted(set(counts.tolist()) - {0}) == [per_class], split
    assert sum(len(datamodule.splits[s]) for s in SPLITS) == 12 * 8
    fraction = folder(flat_root, tmp_path, test_classes=1 / 3)
    assert set(fraction.splits["val"].targets.tolist()) == classes["val"]
    other = folder(flat_root, tmp_path, test_classes=4, split_seed=1)
    assert set(other.splits["val"].targets.tolist()) != classes["val"]


def test_without_val_the_test_classes_are_halved(tmp_path: Path):
    root = tmp_path / "no-val"
    for split in ("train", "test"):
        shutil.copytree(file_data.root("retrieval_folder") / split, root / split)
    datamodule = folder(root, tmp_path)
    whole = folder(file_data.root("retrieval_folder"), tmp_path)
    assert torch.equal(datamodule.splits["train"].inputs, whole.splits["train"].inputs)
    held_out = torch.cat([datamodule.splits[s].targets for s in ("val", "test")])
    assert torch.equal(held_out.sort().values, whole.splits["test"].targets.sort().values)
    assert torch.equal(
        torch.bincount(datamodule.splits["val"].targets),
        torch.bincount(datamodule.splits["test"].targets),
    )


def test_training_batches_are_p_classes_of_k(tmp_path: Path):
    datamodule = folder(file_data.root("retrieval_folder"), tmp_path)
    for inputs, targets in datamodule.train_dataloader():
        assert inputs.shape == (8, 1, 28, 28) and inputs.dtype == torch.float32
        assert sorted(torch.bincount(targets).tolist())[-4:] == [2, 2, 2, 2]


def test_too_few_classes_to_hold_out(flat_root: Path, tmp_path: Path):
    with pytest.raises(DataError, match=r"^retrieval_folder: 12 classes cannot give 11 held-out"):
        folder(flat_root, tmp_path, test_classes=11)
