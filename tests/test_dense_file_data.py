"""``data=mask_folder``, ``clean_folder`` and ``box_csv``: what they load from the tiny exports of
the built-in data equals the built-in tensors, split by split; the seeded split, the mask rules
(0/1 or 0/255, thresholds, suffixes), resizing, streaming and the box arithmetic against PIL and
float64 references; a suite running on file data.

Tolerances. Images are written as 8-bit PNGs, each pixel rounded to the nearest of 256 levels,
so they read back within half a level, 0.5/255 (plus float32 rounding): ``IMAGE_ATOL``. Masks are
exact. Boxes are written as pixel coordinates and divided by the image's side again in float64,
then rounded to float32; the built-in divides in float32: both round the same quotient, so they
differ by at most one float32 ulp below 1, 2**-23: ``BOX_ATOL``.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from dense_file_data import builtin
from file_data import root
from PIL import Image
from task_examples import choices
from train_cli import run_script, run_train

from datasets._base import SPLITS
from datasets.box_csv import BoxCsvDataModule
from datasets.clean_folder import CleanFolderDataModule
from datasets.errors import DataError
from datasets.files import StreamedImages, split_indices
from datasets.mask_folder import MaskFolderDataModule
from datasets.restoration import RestorationDataModule

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
IMAGE_ATOL = 0.5 / 255 + 1e-6
BOX_ATOL = 2**-23


def served(datamodule, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split as the loader serves it (the per-batch transform applied)."""
    datamodule.setup()
    dataset = datamodule.splits[split]
    return dataset.__getitems__(list(range(len(dataset))))


def reference(name: str, **options):
    datamodule = builtin(name) if not options else RestorationDataModule(**options)
    datamodule.setup()
    return datamodule


def check_images(loaded: torch.Tensor, expected: torch.Tensor) -> None:
    assert loaded.dtype == torch.float32 and loaded.shape == expected.shape
    torch.testing.assert_close(loaded, expected, rtol=0, atol=IMAGE_ATOL)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_mask_folder_loads_the_exported_seg_imbalanced(tmp_path: Path):
    expected = reference("mask_folder")
    loaded = MaskFolderDataModule(root=root("mask_folder"), channels=1, cache_dir=tmp_path)
    for split in SPLITS:
        (images, masks), want = served(loaded, split), expected.splits[split]
        check_images(images, want.inputs)
        assert masks.dtype == torch.float32 and torch.equal(masks, want.targets), split
    assert loaded.data_stats == expected.data_stats  # pixels [background, foreground]
    assert loaded.data_stats["class_counts"][1] == int(expected.splits["train"].targets.sum())


def test_box_csv_loads_the_exported_boxes(tmp_path: Path):
    expected = reference("box_csv")
    loaded = BoxCsvDataModule(root=root("box_csv"), channels=1, cache_dir=tmp_path)
    for split in SPLITS:
        (images, boxes), want = served(loaded, split), expected.splits[split]
        check_images(images, want.inputs)
        assert boxes.dtype == torch.float32 and boxes.shape == want.targets.shape
        torch.testing.assert_close(boxes, want.targets, rtol=0, atol=BOX_ATOL)


def test_clean_folder_loads_the_exported_pairs(tmp_path: Path):
    expected = reference("clean_folder")
    # noise and strength are unused with fixed pairs: another kind must change nothing
    loaded = CleanFolderDataModule(
        root=root("clean_folder"), channels=1, noise="salt_pepper", cache_dir=tmp_path
    )
    for split in SPLITS:
        (inputs, clean), want = served(loaded, split), expected.splits[split]
        check_images(inputs, want.inputs)
        check_images(clean, want.targets)


@pytest.mark.parametrize(("noise", "strength"), [("gaussian", 0.2), ("salt_pepper", 0.3)])
def test_clean_folder_degrades_clean_images_as_the_builtin(tmp_path: Path, noise, strength):
    """Only the clean images (``clean/`` without ``degraded/``): degraded here with the built-in's
    seeded noise, so the inputs equal the built-in's noisy images (whose clean images are the
    same for any noise: they depend on the seed alone)."""
    data = tmp_path / "data"
    for split in SPLITS:
        shutil.copytree(root("clean_folder") / split / "clean", data / split / "clean")
    expected = reference("clean_folder", n_train=32, n_val=16, n_test=16, noise=noise,
                         strength=strength)  # fmt: skip
    loaded = CleanFolderDataModule(
        root=data, channels=1, noise=noise, strength=strength, cache_dir=tmp_path / "cache"
    )
    other_seed = CleanFolderDataModule(
        root=data, channels=1, noise=noise, strength=strength, seed=1, cache_dir=tmp_path / "c"
    )
    for split in SPLITS:
        (inputs, clean), want = served(loaded, split), expected.splits[split]
        check_images(inputs, want.inputs)
        check_images(clean, want.targets)
        assert not torch.equal(served(other_seed, split)[0], inputs)


def flat_copy(data: Path, layout: Path, folders: tuple[str, ...]) -> None:
    """The split folders of ``layout`` merged into one pool: ``<split>-<name>`` per file."""
    for split in SPLITS:
        for folder in folders:
            for path in sorted((layout / split / folder).iterdir()):
                target = data / folder / f"{split}-{path.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)


def test_a_root_without_split_folders_is_split_by_split_seed(tmp_path: Path):
    data = tmp_path / "data"
    flat_copy(data, root("mask_folder"), ("images", "masks"))
    expected = reference("mask_folder")
    # the pool in file-name order: test-*, train-*, val-*
    pool = torch.cat([expected.splits[split].targets for split in ("test", "train", "val")])
    options = dict(root=data, channels=1, val_fraction=0.25, test_fraction=0.25)
    loaded = MaskFolderDataModule(**options, split_seed=3, cache_dir=tmp_path / "cache")
    index = split_indices(len(pool), 0.25, 0.25, seed=3, name="reference")
    assert sorted(torch.cat(index).tolist()) == list(range(64))
    for split, chosen in zip(SPLITS, index, strict=True):
        assert torch.equal(served(loaded, split)[1], pool[chosen]), split
    reseeded = MaskFolderDataModule(**options, split_seed=4, cache_dir=tmp_path / "cache")
    assert not torch.equal(served(reseeded, "train")[1], served(loaded, "train")[1])


def test_without_val_validation_is_drawn_from_train(tmp_path: Path):
    data = tmp_path / "data"
    for split in ("train", "test"):
        shutil.copytree(root("mask_folder") / split, data / split)
    expected = reference("mask_folder")
    loaded = MaskFolderDataModule(root=data, channels=1, val_fraction=0.25, cache_dir=tmp_path)
    train, val, _ = split_indices(32, 0.25, 0.0, seed=0, name="reference")
    assert (len(train), len(val)) == (24, 8)
    want = expected.splits["train"].targets
    assert torch.equal(served(loaded, "train")[1], want[train])
    assert torch.equal(served(loaded, "val")[1], want[val])
    assert torch.equal(served(loaded, "test")[1], expected.splits["test"].targets)


def copy_masks(data: Path, suffix: str, values) -> None:
    """The exported masks (0/255) as ``values(mask)`` in files of ``suffix``, beside the images."""
    for split in SPLITS:
        shutil.copytree(root("mask_folder") / split / "images", data / split / "images")
        (data / split / "masks").mkdir(parents=True)
        for path in sorted((root("mask_folder") / split / "masks").iterdir()):
            mask = values(pixels(path))
            Image.fromarray(mask).save((data / split / "masks" / path.name).with_suffix(suffix))


def test_masks_stored_as_0_1_with_another_suffix_pair_by_name(tmp_path: Path):
    copy_masks(tmp_path / "data", ".bmp", lambda mask: (mask // 255).astype(np.uint8))
    loaded = MaskFolderDataModule(root=tmp_path / "data", channels=1, cache_dir=tmp_path / "c")
    expected = reference("mask_folder")
    for split in SPLITS:
        assert torch.equal(served(loaded, split)[1], expected.splits[split].targets)


def test_mask_threshold_binarises_and_is_part_of_the_cache_key(tmp_path: Path):
    # grey levels 0, 100 (a ring of the foreground's left edge) and 200 (the rest)
    def levels(mask):
        shifted = np.roll(mask, 1, axis=1)
        return np.where(mask > 0, 200, np.where(shifted > 0, 100, 0)).astype(np.uint8)

    data, cache = tmp_path / "data", tmp_path / "cache"
    copy_masks(data, ".png", levels)
    expected = reference("mask_folder").splits["val"].targets
    high = MaskFolderDataModule(root=data, channels=1, mask_threshold=150, cache_dir=cache)
    low = MaskFolderDataModule(root=data, channels=1, mask_threshold=50, cache_dir=cache)
    assert torch.equal(served(high, "val")[1], expected)
    ring = torch.from_numpy(np.roll(expected.numpy(), 1, axis=3) > 0)
    assert torch.equal(served(low, "val")[1], (expected.bool() | ring).float())
    with pytest.raises(DataError) as error:
        MaskFolderDataModule(root=data, channels=1, cache_dir=cache).setup()
    assert str(error.value).startswith(f"mask_folder: the mask {data}/train/masks/")
    assert "holds the values 0, 100, 200; expected a binary mask" in str(error.value)


def test_resizing_uses_bilinear_images_and_nearest_masks(tmp_path: Path):
    loaded = MaskFolderDataModule(
        root=root("mask_folder"), channels=3, image_size=16, cache_dir=tmp_path
    )
    assert loaded.model_inputs["image_size"] == 16 and loaded.model_inputs["in_channels"] == 3
    images, masks = served(loaded, "test")
    for i in (0, 5):
        name = f"{i:02d}.png"
        image = Image.open(root("mask_folder") / "test" / "images" / name).convert("RGB")
        want = np.asarray(image.resize((16, 16), Image.Resampling.BILINEAR)) / 255
        torch.testing.assert_close(images[i].double(), torch.from_numpy(want).permute(2, 0, 1))
        mask = Image.open(root("mask_folder") / "test" / "masks" / name)
        want = np.asarray(mask.resize((16, 16), Image.Resampling.NEAREST)) / 255
        assert torch.equal(masks[i, 0].double(), torch.from_numpy(want))


@pytest.mark.parametrize(("name", "cls"), [("mask_folder", MaskFolderDataModule),
                                           ("box_csv", BoxCsvDataModule)])  # fmt: skip
def test_images_over_max_memory_stream_the_same_tensors(tmp_path: Path, name: str, cls):
    in_memory = cls(root=root(name), channels=1, cache_dir=tmp_path / "a")
    streamed = cls(root=root(name), channels=1, cache_dir=tmp_path / "b", max_memory=1e-4)
    streamed.setup()
    assert isinstance(streamed.splits["train"], StreamedImages)
    for split in SPLITS:
        for got, want in zip(served(streamed, split), served(in_memory, split), strict=True):
            assert torch.equal(got, want)


def test_clean_folder_over_max_memory_says_so(tmp_path: Path):
    data = CleanFolderDataModule(
        root=root("clean_folder"), channels=1, cache_dir=tmp_path, max_memory=0.1
    )
    with pytest.raises(DataError, match=r"^clean_folder: the 64 images under .* take 0.5 MB as "):
        data.setup()


def test_box_csv_scales_each_axis_by_the_original_image(tmp_path: Path):
    """40 x 20 images in a subfolder, resized to 16 x 16: each coordinate over its own axis."""
    rng = np.random.default_rng(0)
    boxes = [(4, 2, 20, 10), (0, 0, 40, 20), (10.5, 3, 39, 19.25), (1, 1, 2, 2), (30, 5, 31, 6)]
    (tmp_path / "pictures").mkdir()
    lines = ["file,x1,y1,x2,y2"]
    for i, box in enumerate(boxes):
        Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(
            tmp_path / "pictures" / f"{i}.jpg"
        )
        lines.append(f"pictures/{i}.jpg," + ",".join(str(v) for v in box))
    (tmp_path / "boxes.csv").write_text("\n".join(lines) + "\n")
    loaded = BoxCsvDataModule(
        root=tmp_path, image_size=16, val_fraction=0.2, test_fraction=0.2, cache_dir=tmp_path / "c"
    )
    got = torch.cat([served(loaded, split)[1] for split in SPLITS])
    order = torch.cat(split_indices(5, 0.2, 0.2, seed=0, name="reference"))
    want = torch.tensor(boxes, dtype=torch.float64) / torch.tensor([40.0, 20, 40, 20])
    torch.testing.assert_close(got, want[order].float(), rtol=0, atol=BOX_ATOL)
    assert served(loaded, "train")[0].shape == (3, 3, 16, 16)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda data: Image.new("L", (32, 24)).save(data / "images" / "a.png"),
            "mask_folder: {data}/images/a.png is 32x24, not square; set data.image_size",
        ),
        (
            lambda data: (data / "train").mkdir(),
            "mask_folder: {data}/test does not exist (a root with train/ needs test/)",
        ),
        (
            lambda data: (data / "val").mkdir(),
            "mask_folder: {data} has val/ but no train/; give train/ and test/ (val/ optional)",
        ),
    ],
    ids=["not square", "train without test", "val without train"],
)
def test_layout_errors_name_the_file(tmp_path: Path, make, message: str):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(4):
        Image.new("L", (32, 24)).save(data / "masks" / f"{'abcd'[i]}.png")
        Image.new("L", (32, 24)).save(data / "images" / f"{'abcd'[i]}.png")
    make(data)
    with pytest.raises(DataError) as error:
        MaskFolderDataModule(root=data, cache_dir=tmp_path / "cache").setup()
    assert str(error.value).startswith(message.format(data=data))


@pytest.mark.slow
def test_a_suite_runs_on_file_data_of_its_task(tmp_path: Path):
    """``-m suite=seg_imbalance data=mask_folder``: the command line's data of the suite's task
    replaces the suite's data in every job; the suite's variants, seeds and model stay."""
    result = run_train(
        "-m",
        "suite=seg_imbalance",
        "data=mask_folder",
        f"data.root={root('mask_folder')}",
        "dry_run=true",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    *jobs, count = result.stdout.strip().splitlines()
    assert count == "42 jobs (dry run: nothing trained)"
    assert all("data=mask_folder" in job.split() for job in jobs)
    assert {job.split()[0] for job in jobs} >= {"loss=bce", "loss=dice", "loss=focal"}
    # a job as the launcher composes it: the file data, the suite's model and the variant's loss
    job = choices("suite=seg_imbalance", "data=mask_folder", "loss=dice", "seed=1")
    assert (job["data"], job["model"], job["loss"]) == ("mask_folder", "unet", "dice")


@pytest.mark.parametrize(
    ("data", "layout"),
    [
        ("seg_imbalanced", ["images/0.png", "images/1.png", "masks/0.png", "masks/1.png"]),
        ("restoration", ["clean/0.png", "clean/1.png", "degraded/0.png", "degraded/1.png"]),
        ("boxes", ["0.png", "1.png", "boxes.csv"]),
    ],
)
def test_the_export_script_writes_each_dense_layout(tmp_path: Path, data: str, layout: list[str]):
    out = tmp_path / "out"
    sizes = ["data.n_train=4", "data.n_val=3", "data.n_test=3"]
    result = run_script(SCRIPTS / "export_data.py", f"data={data}", *sizes, "--out", str(out),
                        "--limit", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"exported data={data} (")
    for split in SPLITS:
        written = sorted(str(p.relative_to(out / split)) for p in (out / split).rglob("*.*"))
        assert written == layout, split
