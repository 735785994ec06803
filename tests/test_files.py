"""The file-data core, ``datasets/files.py``: listing, decoding (against PIL and the pixels
written), the on-disk tensor cache, seeded stratified splits, streaming and pixel statistics."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.errors import DataError
from datasets.files import (
    FileDataModule,
    StreamedImages,
    cached_tensors,
    list_images,
    pixel_stats,
    read_images,
    split_indices,
)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """``pixels`` (uint8 ``[H, W]`` or ``[H, W, 3]``) as a lossless PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def random_pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def rgb_files(tmp_path: Path) -> tuple[list[Path], list[np.ndarray]]:
    arrays = [random_pixels(seed, (12, 16, 3)) for seed in range(5)]
    paths = [write_png(tmp_path / f"{i:02d}.png", a) for i, a in enumerate(arrays)]
    return paths, arrays


def test_list_images_sorts_by_name_and_skips_what_is_not_an_image(tmp_path: Path):
    pixels = random_pixels(0, (4, 4))
    for name in ("b.PNG", "a.jpg", "10.png", "2.png", ".hidden.png", "notes.txt"):
        write_png(tmp_path / name, pixels) if name.endswith(("png", "PNG", "jpg")) else (
            tmp_path / name
        ).write_text("x")
    (tmp_path / "sub.png").mkdir()  # a folder named like an image is not one
    assert [p.name for p in list_images(tmp_path, "demo")] == ["10.png", "2.png", "a.jpg", "b.PNG"]


def test_list_images_names_a_missing_or_empty_folder(tmp_path: Path):
    with pytest.raises(DataError, match=f"^demo: {tmp_path / 'none'} does not exist$"):
        list_images(tmp_path / "none", "demo")
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=rf"^demo: {tmp_path} holds no images \(expected .png, "):
        list_images(tmp_path, "demo")


def test_read_images_gives_the_pixels_written(rgb_files):
    paths, arrays = rgb_files
    images = read_images(paths, "demo", channels=3, image_size=None)
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 12, 16)
    for image, array in zip(images, arrays, strict=True):
        assert torch.equal(image, torch.from_numpy(array).permute(2, 0, 1))


def test_grayscale_is_pils_luma_formula(rgb_files):
    paths, arrays = rgb_files
    images = read_images(paths, "demo", channels=1, image_size=None)
    assert images.shape == (5, 1, 12, 16)
    for image, array in zip(images, arrays, strict=True):
        # ITU-R 601-2 luma in PIL's 16-bit fixed point, rounded: L = R 299/1000 + G 587/1000 + ...
        r, g, b = (array[..., i].astype(np.int64) for i in range(3))
        luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        assert torch.equal(image[0], torch.from_numpy(luma.astype(np.uint8)))


@pytest.mark.parametrize("resample", ["bilinear", "nearest"])
def test_resized_images_are_pils(rgb_files, resample: str):
    paths, _ = rgb_files
    images = read_images(paths, "demo", channels=3, image_size=8, resample=resample)
    assert images.shape == (5, 3, 8, 8)
    filters = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}
    for image, path in zip(images, paths, strict=True):
        expected = np.array(Image.open(path).convert("RGB").resize((8, 8), filters[resample]))
        assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1))


def test_mixed_sizes_need_an_image_size(tmp_path: Path):
    small = write_png(tmp_path / "a.png", random_pixels(0, (10, 10)))
    large = write_png(tmp_path / "b.png", random_pixels(1, (10, 14)))
    with pytest.raises(DataError) as error:
        read_images([small, large], "demo", channels=1, image_size=None)
    assert str(error.value) == (
        f"demo: {small} is 10x10 but {large} is 14x10; set data.image_size to resize every "
        "image to one size"
    )
    assert read_images([small, large], "demo", channels=1, image_size=6).shape == (2, 1, 6, 6)


def test_a_truncated_or_foreign_file_is_named(tmp_path: Path):
    good = write_png(tmp_path / "good.png", random_pixels(0, (32, 32, 3)))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(DataError, match=f"^demo: cannot read {cut}: "):
        read_images([good, cut], "demo", channels=3, image_size=None)
    text = tmp_path / "text.jpg"
    text.write_text("not a picture")
    with pytest.raises(DataError, match=f"^demo: cannot read {text}: cannot identify image file"):
        read_images([text], "demo", channels=3, image_size=None)


def test_two_channels_are_refused(rgb_files):
    with pytest.raises(DataError, match=r"^demo: expected data.channels 1 \(grayscale\) or 3"):
        read_images(rgb_files[0], "demo", channels=2, image_size=None)


class Builds:
    """A ``build`` for :func:`cached_tensors` that counts its calls."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.calls = paths, 0

    def __call__(self) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {"images": read_images(self.paths, "demo", 3, None)}


def test_the_cache_is_hit_until_a_file_or_an_option_changes(tmp_path: Path, rgb_files):
    paths, arrays = rgb_files
    cache = tmp_path / "cache"
    build = Builds(paths)
    first = cached_tensors("demo", paths, {"channels": 3}, cache, build)
    again = cached_tensors("demo", paths, {"channels": 3}, cache, build)
    assert build.calls == 1 and torch.equal(first["images"], again["images"])
    assert [p.name for p in cache.iterdir()] == [next(cache.iterdir()).name]  # no temporary left
    cached_tensors("demo", paths, {"channels": 3, "image_size": 8}, cache, build)
    assert build.calls == 2  # another option
    write_png(paths[2], arrays[3])  # same size, new content and time
    stat = paths[2].stat()
    os.utime(paths[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = cached_tensors("demo", paths, {"channels": 3}, cache, build)
    assert build.calls == 3
    assert torch.equal(changed["images"][2], torch.from_numpy(arrays[3]).permute(2, 0, 1))


def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path, rgb_files):
    paths, _ = rgb_files
    build = Builds(paths)
    cached_tensors("demo", paths, {}, tmp_path / "cache", build)
    (cache_file,) = (tmp_path / "cache").iterdir()
    cache_file.write_bytes(b"garbage")
    rebuilt = cached_tensors("demo", paths, {}, tmp_path / "cache", build)
    assert build.calls == 2 and torch.equal(rebuilt["images"], build()["images"])


def stratified_labels() -> torch.Tensor:
    """Four classes of 5, 10, 20 and 40 samples, interleaved."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate((5, 10, 20, 40))])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]


def test_a_stratified_split_is_disjoint_covering_and_has_every_class_everywhere():
    labels = stratified_labels()
    train, val, test = split_indices(len(labels), 0.2, 0.2, seed=3, name="demo", labels=labels)
    everything = torch.cat([train, val, test])
    assert sorted(everything.tolist()) == list(range(len(labels)))  # disjoint and covering
    for part in (train, val, test):
        assert torch.equal(part, part.sort().values)
        assert set(labels[part].tolist()) == {0, 1, 2, 3}
    # per class: round(0.2 n) each to val and test, at least one
    assert torch.bincount(labels[val]).tolist() == [1, 2, 4, 8]
    assert torch.bincount(labels[test]).tolist() == [1, 2, 4, 8]


def test_a_split_is_seeded():
    labels = stratified_labels()
    one = split_indices(len(labels), 0.2, 0.2, seed=3, name="demo", labels=labels)
    again = split_indices(len(labels), 0.2, 0.2, seed=3, name="demo", labels=labels)
    other = split_indices(len(labels), 0.2, 0.2, seed=4, name="demo", labels=labels)
    assert all(torch.equal(a, b) for a, b in zip(one, again, strict=True))
    assert not torch.equal(one[1], other[1])


def test_a_zero_fraction_leaves_its_split_empty():
    labels = stratified_labels()
    train, val, test = split_indices(len(labels), 0.2, 0.0, seed=3, name="demo", labels=labels)
    assert len(test) == 0 and torch.bincount(labels[val]).tolist() == [1, 2, 4, 8]
    assert sorted(torch.cat([train, val]).tolist()) == list(range(len(labels)))
    with pytest.raises(
        DataError, match=r"^demo: class 1 has 1 image, too few to split into train and val$"
    ):
        split_indices(4, 0.5, 0.0, 0, "demo", torch.tensor([0, 0, 0, 1]))


def test_a_class_too_small_to_split_is_named():
    labels = torch.tensor([0, 0, 0, 1, 1, 0])
    with pytest.raises(
        DataError, match=r"^demo: class 1 has 2 images, too few to split into train"
    ):
        split_indices(6, 0.2, 0.2, seed=0, name="demo", labels=labels)
    with pytest.raises(DataError, match=r"^demo: class /data/b has 2 images, too few"):
        split_indices(6, 0.2, 0.2, 0, "demo", labels, class_names=["/data/a", "/data/b"])
    with pytest.raises(DataError, match=r"^demo: the data has 2 images, too few"):
        split_indices(2, 0.2, 0.2, seed=0, name="demo")


class Folder(FileDataModule):
    name = "demo"


def test_streamed_images_are_the_decoded_tensors(tmp_path: Path, rgb_files):
    paths, _ = rgb_files
    datamodule = Folder(tmp_path, batch_size=2, eval_batch_size=2, cache_dir=tmp_path / "cache")
    targets, index = torch.arange(5) * 10, torch.tensor([4, 1, 3])
    decoding = dict(channels=3, image_size=6, resample="bilinear")
    images = datamodule.load_images(
        paths,
        **decoding,
        options={},
        build=lambda: {"images": read_images(paths, "demo", **decoding)},
    )["images"]

    def halve(batch: torch.Tensor) -> torch.Tensor:
        return batch.float() / 2

    in_memory = datamodule.split(images, paths, targets, index, decoding, halve)
    streamed = datamodule.split(None, paths, targets, index, decoding, halve)
    assert isinstance(streamed, StreamedImages)
    for a, b in zip(in_memory.__getitems__([0, 2]), streamed.__getitems__([0, 2]), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(streamed.targets, torch.tensor([40, 10, 30]))


def test_images_over_max_memory_stream(tmp_path: Path, rgb_files):
    paths, _ = rgb_files  # 5 x 3 x 12 x 16 bytes = 2880

    def build():
        raise AssertionError("decoded although over max_memory")

    small = Folder(tmp_path, 2, 2, cache_dir=tmp_path / "cache", max_memory=2000 / 2**20)
    assert small.load_images(paths, 3, None, "bilinear", {}, build) is None
    assert not (tmp_path / "cache").exists()
    large = Folder(tmp_path, 2, 2, cache_dir=tmp_path / "cache", max_memory=3000 / 2**20)
    assert large.fits_in_memory(paths, 3, None)


def test_streaming_still_refuses_mixed_sizes(tmp_path: Path, rgb_files):
    paths, _ = rgb_files
    odd = write_png(tmp_path / "odd.png", random_pixels(9, (5, 5, 3)))
    tiny = Folder(tmp_path, 2, 2, cache_dir=tmp_path / "cache", max_memory=1e-6)
    with pytest.raises(DataError, match=f"^demo: {paths[0]} is 16x12 but {odd} is 5x5; set "):
        tiny.load_images([*paths, odd], 3, None, "bilinear", {}, dict)


@pytest.mark.parametrize("per_channel", [True, False])
def test_pixel_stats_are_the_float64_mean_and_std(rgb_files, per_channel: bool):
    paths, arrays = rgb_files
    pixels = np.stack(arrays).astype(np.float64) / 255  # [N, H, W, 3]
    axes = (0, 1, 2) if per_channel else None
    expected = (np.atleast_1d(pixels.mean(axis=axes)), np.atleast_1d(pixels.std(axis=axes)))
    images = read_images(paths, "demo", 3, None)
    streamed = StreamedImages(paths, torch.zeros(5), "demo", 3, None)
    for source in (images, streamed):
        mean, std = pixel_stats(source, per_channel)
        np.testing.assert_allclose(mean, expected[0], rtol=1e-12)
        np.testing.assert_allclose(std, expected[1], rtol=1e-9)


def test_a_missing_root_is_named(tmp_path: Path):
    with pytest.raises(DataError, match=f"^demo: {tmp_path / 'none'} does not exist$"):
        Folder(tmp_path / "none", 2, 2).check_root()
    with pytest.raises(DataError, match=r"^demo: set data.root to the folder holding your images"):
        Folder("", 2, 2)
