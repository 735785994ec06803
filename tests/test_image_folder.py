"""``data=image_folder``: the exported fake MNIST reads back as the built-in splits (tensors,
labels, order, class counts) and trains to the same test metrics; the class-folder layout's
stratified split, the user's splits, class order, channels, resizing, normalisation, the long
tail, streaming and the cache."""

import shutil
from pathlib import Path

import file_data
import numpy as np
import pytest
import torch
from PIL import Image

from datasets import image_folder
from datasets.files import StreamedImages, read_images
from datasets.image_folder import ImageFolderDataModule, folder_names
from datasets.mnist import DATASETS, long_tail_counts
from train import train

SPLITS = ("train", "val", "test")


def folder(root: Path, tmp_path: Path, **options) -> ImageFolderDataModule:
    options = {"batch_size": 8, **options}
    datamodule = ImageFolderDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), **options)
    datamodule.setup()
    return datamodule


@pytest.fixture
def flat_root(tmp_path: Path) -> Path:
    """The exported training split as the class-folder layout ``root/<class>/*.png``."""
    flat = tmp_path / "flat"
    shutil.copytree(file_data.root("image_folder") / "train", flat)
    return flat


def test_the_export_reads_back_as_the_built_in_splits(tmp_path: Path):
    builtin = file_data.fake_mnist(tmp_path / "idx")
    builtin.setup()
    files = folder(file_data.root("image_folder"), tmp_path)
    for split in SPLITS:
        expected, got = builtin.splits[split], files.splits[split]
        assert torch.equal(got.inputs, expected.inputs), split  # uint8, same order
        assert torch.equal(got.targets, expected.targets), split
    assert files.class_names == [f"{d}_{d}" for d in range(10)]
    assert (files.num_classes, files.in_channels, files.image_size) == (10, 1, 28)
    assert files.data_stats == builtin.data_stats


def test_class_folders_sort_in_the_built_in_order():
    names = folder_names(DATASETS["fashion_mnist"].class_names, 10)
    assert names[0] == "0_T-shirt-top" and names[9] == "9_Ankle_boot"
    assert sorted(names) == names
    many = folder_names([f"c{i}" for i in range(12)], 12)
    assert many[2] == "02_c2" and sorted(many) == many
    unnamed = folder_names(None, 100)
    assert unnamed[7] == "07" and sorted(unnamed) == unnamed


@pytest.mark.slow
def test_files_train_to_the_built_in_test_metrics(make_cfg):
    builtin = train(make_cfg("data=mnist"))
    files = train(make_cfg("data=image_folder", "data.mean=0.1307", "data.std=0.3081"))
    tested = {k: v for k, v in builtin.items() if k.startswith("test/") and "recall/" not in k}
    assert tested and {k: files[k] for k in tested} == tested


def test_class_folders_split_stratified_and_seeded(flat_root: Path, tmp_path: Path):
    datamodule = folder(flat_root, tmp_path, val_fraction=0.2, test_fraction=0.1)
    labels = torch.cat([datamodule.splits[s].targets for s in SPLITS])
    available = torch.bincount(labels, minlength=10)
    for split, fraction in (("val", 0.2), ("test", 0.1)):
        counts = torch.bincount(datamodule.splits[split].targets, minlength=10)
        assert counts.tolist() == [max(1, round(fraction * n)) for n in available.tolist()]
    # every image in exactly one split: the union of the splits is the folder's images
    everything = torch.cat([datamodule.splits[s].inputs for s in SPLITS])
    listed = read_images(sorted(flat_root.glob("*/*.png")), "test", 1, None)
    assert sorted(map(bytes, everything.flatten(1).numpy())) == sorted(
        map(bytes, listed.flatten(1).numpy())
    )
    again = folder(flat_root, tmp_path, val_fraction=0.2, test_fraction=0.1)
    other = folder(flat_root, tmp_path, val_fraction=0.2, test_fraction=0.1, split_seed=1)
    assert torch.equal(again.splits["val"].inputs, datamodule.splits["val"].inputs)
    assert not torch.equal(other.splits["val"].inputs, datamodule.splits["val"].inputs)


def test_a_layout_without_val_splits_it_off_train(tmp_path: Path):
    root = tmp_path / "no-val"
    for split in ("train", "test"):
        shutil.copytree(file_data.root("image_folder") / split, root / split)
    datamodule = folder(root, tmp_path, val_fraction=0.2)
    whole = folder(file_data.root("image_folder"), tmp_path)
    assert torch.equal(datamodule.splits["test"].inputs, whole.splits["test"].inputs)
    train_val = torch.cat([datamodule.splits[s].targets for s in ("train", "val")])
    assert sorted(train_val.tolist()) == sorted(whole.splits["train"].targets.tolist())
    assert set(datamodule.splits["val"].targets.tolist()) == set(range(10))


def test_classes_given_set_the_order(tmp_path: Path):
    root = file_data.root("image_folder")  # the user's splits: no split drawn, same images
    order = [f"{d}_{d}" for d in reversed(range(10))]
    default = folder(root, tmp_path)
    reordered = folder(root, tmp_path, classes=order)
    assert reordered.class_names == order
    for split in SPLITS:
        assert torch.equal(reordered.splits[split].inputs, default.splits[split].inputs)
        assert torch.equal(reordered.splits[split].targets, 9 - default.splits[split].targets)


def test_grayscale_files_read_as_rgb_and_resized(tmp_path: Path):
    root = file_data.root("image_folder")
    gray = folder(root, tmp_path)
    rgb = folder(root, tmp_path, channels=3, image_size=14, resample="nearest")
    assert (rgb.in_channels, rgb.image_size) == (3, 14)
    # the split's first image: files ordered by name, then class (000.png of its class)
    first = min((root / "train").glob("*/*.png"), key=lambda p: (p.name, p.parent.name))
    expected = np.array(Image.open(first).convert("RGB").resize((14, 14), Image.Resampling.NEAREST))
    assert torch.equal(rgb.splits["train"].inputs[0], torch.from_numpy(expected).permute(2, 0, 1))
    # every channel is the gray image, nearest-resized: PIL takes source pixel 2i + 1 of 28
    reference = gray.splits["train"].inputs[:, :, 1::2, 1::2]
    assert torch.equal(rgb.splits["train"].inputs, reference.expand(-1, 3, -1, -1))


def test_mean_and_std_default_to_the_training_split(tmp_path: Path):
    datamodule = folder(file_data.root("image_folder"), tmp_path)
    pixels = datamodule.splits["train"].inputs.double() / 255
    mean, std = pixels.mean().item(), pixels.std(unbiased=False).item()
    batch, _ = datamodule.splits["val"].__getitems__([0, 1, 2])
    raw = datamodule.splits["val"].inputs[:3].double() / 255
    torch.testing.assert_close(batch.double(), (raw - mean) / std, rtol=0, atol=1e-5)


def test_rgb_statistics_are_per_channel(tmp_path: Path):
    root = tmp_path / "rgb"
    rng = np.random.default_rng(0)
    for c, tint in enumerate(((1.0, 0.5, 0.2), (0.2, 1.0, 0.6))):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(10):
            pixels = (rng.integers(0, 256, (8, 8, 1)) * np.array(tint)).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    datamodule = folder(root, tmp_path, batch_size=2, val_fraction=0.2, test_fraction=0.2)
    train = datamodule.splits["train"]
    pixels = train.inputs.double() / 255
    mean = pixels.mean(dim=(0, 2, 3), keepdim=True)
    std = pixels.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    batch, _ = train.__getitems__(list(range(len(train))))
    torch.testing.assert_close(batch.double(), (pixels - mean) / std, rtol=0, atol=1e-5)
    assert datamodule.in_channels == 3


def test_the_long_tail_keeps_cuis_profile(tmp_path: Path):
    root = file_data.root("image_folder")
    balanced = folder(root, tmp_path)
    tail = folder(root, tmp_path, imbalance_ratio=10.0)
    available = balanced.data_stats["class_counts"]
    assert tail.data_stats["class_counts"] == long_tail_counts(available, 10.0)
    kept = {bytes(x) for x in tail.splits["train"].inputs.flatten(1).numpy()}
    assert kept <= {bytes(x) for x in balanced.splits["train"].inputs.flatten(1).numpy()}
    assert torch.equal(tail.splits["test"].inputs, balanced.splits["test"].inputs)


def test_over_max_memory_the_splits_stream_the_same_batches(tmp_path: Path):
    root = file_data.root("image_folder")
    in_memory = folder(root, tmp_path, mean=0.5, std=0.25)
    streamed = folder(root, tmp_path, mean=0.5, std=0.25, max_memory=0.1)  # 800 x 784 B > 0.1 MB
    for split in SPLITS:
        assert isinstance(streamed.splits[split], StreamedImages)
    loaders = [d.train_dataloader() for d in (in_memory, streamed)]
    for a, b in zip(*loaders, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert streamed.data_stats == in_memory.data_stats


def test_streamed_statistics_and_workers(tmp_path: Path):
    root = file_data.root("image_folder")
    in_memory = folder(root, tmp_path)
    streamed = folder(root, tmp_path, max_memory=0.1, num_workers=1, eval_batch_size=256)
    batches = [next(iter(d.val_dataloader())) for d in (in_memory, streamed)]
    torch.testing.assert_close(batches[0][0], batches[1][0], rtol=0, atol=1e-6)


def test_a_second_load_reads_the_cache(tmp_path: Path, monkeypatch):
    root = file_data.root("image_folder")
    first = folder(root, tmp_path)
    assert len(list((tmp_path / "cache").glob("image_folder-*.pt"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(image_folder, "read_images", no_decoding)
    second = folder(root, tmp_path)
    assert torch.equal(first.splits["train"].inputs, second.splits["train"].inputs)
