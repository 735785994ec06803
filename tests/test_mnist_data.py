"""MNIST-family data: offline IDX reading, the one-line errors, corrupt files, seeded splits, the
long tail, the Debian Fashion-MNIST directory. No test touches the network: torchvision is
replaced by a fake whose download fails or writes fixture files."""

import hashlib
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from idx_fixture import (
    STEMS,
    corrupt_magic,
    idx_bytes,
    truncate_gzip,
    truncate_idx,
    write_fake_idx,
    write_idx,
)

from datasets import mnist
from datasets.mnist import DataError, MNISTDataModule, long_tail_counts, read_idx

EXPECTED_FILES = (
    "expected train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
)
# what torchvision 0.2x raises offline (two mirrors, each failing in name resolution)
OFFLINE = (
    "Error downloading train-images-idx3-ubyte.gz:\n"
    "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got:\n"
    "<urlopen error [Errno -2] Name or service not known>\n"
    "Tried http://yann.lecun.com/exdb/mnist/, got:\n"
    "<urlopen error [Errno -2] Name or service not known>\n"
)


def _module(data_dir: Path, **kwargs) -> MNISTDataModule:
    kwargs = {"val_size": 100, "download": False, **kwargs}
    dm = MNISTDataModule(data_dir=str(data_dir), **kwargs)
    dm.setup()
    return dm


def _fake_torchvision(monkeypatch, download) -> list[dict]:
    """Install a torchvision whose MNIST/FashionMNIST call ``download(**kwargs)``; the calls."""
    calls = []

    def dataset(folder):
        def construct(**kwargs):
            calls.append({"folder": folder, **kwargs})
            download(folder=folder, **kwargs)

        return construct

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(
        MNIST=dataset("MNIST"), FashionMNIST=dataset("FashionMNIST")
    )
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    return calls


def _offline(**kwargs):
    raise RuntimeError(OFFLINE)


def _digest(images: torch.Tensor) -> list[str]:
    return [hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in images]


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_reads_local_idx_files_offline(tmp_path: Path, gz: bool, layout: str, monkeypatch):
    calls = _fake_torchvision(monkeypatch, _offline)
    files_dir = write_fake_idx(tmp_path, n_train=600, n_test=200, gz=gz, layout=layout)
    assert files_dir == (tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw")
    dm = _module(tmp_path, download=True)  # files present: no download attempted
    assert not calls
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [500, 100, 200]
    for split in dm.splits.values():
        assert split.inputs.dtype == torch.uint8 and split.inputs.shape[1:] == (1, 28, 28)
        assert split.targets.dtype == torch.int64 and split.targets.ndim == 1

    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == (128, 1, 28, 28) and inputs.dtype == torch.float32
    assert targets.shape == (128,) and targets.dtype == torch.int64
    inputs, targets = next(iter(dm.val_dataloader()))  # unshuffled: compare with the stored bytes
    expected = (dm.splits["val"].inputs.float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(inputs, expected)
    assert torch.equal(targets, dm.splits["val"].targets)


def test_read_idx_plain_and_gz_agree(tmp_path: Path):
    data = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    plain = write_idx(tmp_path / "a-idx3-ubyte", data)
    packed = write_idx(tmp_path / "b-idx3-ubyte", data, gz=True)
    assert packed.name == "b-idx3-ubyte.gz"
    assert torch.equal(read_idx(plain), data) and torch.equal(read_idx(packed, 2051), data)
    assert idx_bytes(torch.zeros(3, dtype=torch.uint8))[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x03"


def test_plain_file_preferred_and_sets_not_mixed_across_dirs(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=600, seed=0)  # plain
    write_fake_idx(tmp_path, n_train=300, gz=True, seed=5)  # .gz beside it, other content
    assert len(_module(tmp_path).splits["train"]) == 500
    # three files in data_dir and a full set in MNIST/raw: the full set wins, with no mixing
    other = tmp_path / "other"
    write_fake_idx(other, n_train=400, layout="torchvision")
    write_fake_idx(other, n_train=600)
    (other / "t10k-labels-idx1-ubyte").unlink()
    assert len(_module(other).splits["train"]) == 300


def test_decoded_once_per_process_and_reread_when_a_file_changes(tmp_path: Path):
    write_fake_idx(tmp_path)
    first, second = mnist.load("mnist", tmp_path, False), mnist.load("mnist", tmp_path, False)
    assert all(first[k] is second[k] for k in first)  # shared, not decoded again
    labels = tmp_path / "train-labels-idx1-ubyte"
    stat = labels.stat()
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = mnist.load("mnist", tmp_path, False)
    assert third["train_labels"] is not first["train_labels"]
    assert torch.equal(third["train_labels"], first["train_labels"])


# --- missing files ---------------------------------------------------------------------------


def test_missing_files_and_failed_download_give_one_line(tmp_path: Path, monkeypatch):
    calls = _fake_torchvision(monkeypatch, _offline)
    root = tmp_path.resolve()
    with pytest.raises(DataError) as error:
        _module(tmp_path, download=True)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"mnist: no MNIST IDX files in {root} (looked in {root}, {root}/MNIST/raw); "
        f"{EXPECTED_FILES}; download failed: Error downloading train-images-idx3-ubyte.gz: "
        "<urlopen error [Errno -2] Name or service not known> "
        "(tried https://ossci-datasets.s3.amazonaws.com/mnist/, http://yann.lecun.com/exdb/mnist/)"
    )
    assert calls == [{"folder": "MNIST", "root": str(root), "train": False, "download": True}]


def test_download_false_never_calls_torchvision(tmp_path: Path, monkeypatch):
    calls = _fake_torchvision(monkeypatch, _offline)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")  # a partial set is pointed out
    root = tmp_path.resolve()
    with pytest.raises(DataError) as error:
        _module(tmp_path, download=False)
    assert not calls
    assert str(error.value) == (
        f"mnist: no MNIST IDX files in {root} (looked in {root}, {root}/MNIST/raw); "
        f"{root} lacks train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
        f"t10k-labels-idx1-ubyte[.gz]; {EXPECTED_FILES}; download=false"
    )


def test_any_download_exception_becomes_the_one_line(tmp_path: Path, monkeypatch):
    def disk_full(**kwargs):
        raise OSError(28, "No space left on device")

    _fake_torchvision(monkeypatch, disk_full)
    with pytest.raises(DataError, match=r"; download failed: OSError: \[Errno 28\] No space left"):
        _module(tmp_path, download=True)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # not installed at all
    with pytest.raises(DataError, match=r"; download failed: ModuleNotFoundError: .*torchvision"):
        _module(tmp_path, download=True)


def test_downloaded_files_are_read_from_torchvision_layout(tmp_path: Path, monkeypatch):
    def download(folder, root, train, download):
        write_fake_idx(Path(root), gz=True, layout="torchvision", dataset="fashion_mnist")

    monkeypatch.setitem(mnist.SYSTEM_DIRS, "fashion_mnist", [])
    calls = _fake_torchvision(monkeypatch, download)
    dm = _module(tmp_path, name="fashion_mnist", download=True)
    assert [c["folder"] for c in calls] == ["FashionMNIST"]
    assert len(dm.splits["test"]) == 200
    _module(tmp_path, name="fashion_mnist", download=True)
    assert len(calls) == 1  # found locally the second time


# --- corrupt files ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_wrong_magic_is_named(tmp_path: Path, gz: bool):
    write_fake_idx(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    labels = corrupt_magic(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    with pytest.raises(DataError) as error:
        _module(tmp_path)
    assert str(error.value) == f"mnist: {labels} has magic number 1234, expected 2049 (IDX labels)"
    write_fake_idx(tmp_path, gz=gz)
    # an images file where labels belong: the magic number is IDX, but the wrong kind
    images = tmp_path / f"t10k-images-idx3-ubyte{suffix}"
    images.write_bytes((tmp_path / f"t10k-labels-idx1-ubyte{suffix}").read_bytes())
    with pytest.raises(DataError, match=f"^mnist: {images} has magic number 2049, expected 2051"):
        _module(tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_truncated_file_is_named(tmp_path: Path, gz: bool):
    write_fake_idx(tmp_path, n_train=600, gz=gz)
    images = truncate_idx(tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}", keep=1000)
    with pytest.raises(DataError) as error:
        _module(tmp_path)
    assert str(error.value) == (
        f"mnist: {images} is truncated: expected {600 * 28 * 28} bytes of pixels, got 984"
    )
    truncate_idx(images, keep=6)
    with pytest.raises(DataError, match=f"^mnist: {images} is truncated: expected a 16-byte hea"):
        read_idx(images)


def test_broken_gzip_and_oversized_payload_are_named(tmp_path: Path):
    write_fake_idx(tmp_path, gz=True)
    images = truncate_gzip(tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=f"^mnist: cannot read {images}: "):
        _module(tmp_path)
    labels = tmp_path / "labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(torch.zeros(3, dtype=torch.uint8)) + b"\x00")
    with pytest.raises(DataError, match=f"^mnist: {labels} is corrupt: its header \\[3\\]"):
        read_idx(labels)


def test_inconsistent_files_are_named(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=600)
    labels = write_idx(tmp_path / STEMS[1], torch.zeros(599, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"holds 600 images but .*train-labels-idx1-ubyte 599 lab"):
        _module(tmp_path)
    write_idx(labels, torch.full((600,), 10, dtype=torch.uint8))
    with pytest.raises(DataError, match=f"^mnist: {labels} holds label 10, expected 0..9$"):
        _module(tmp_path)
    write_fake_idx(tmp_path)
    images = write_idx(tmp_path / STEMS[2], torch.zeros(200, 32, 32, dtype=torch.uint8))
    with pytest.raises(DataError, match=f"^mnist: {images} holds 32x32 images, expected 28x28$"):
        _module(tmp_path)


# --- splits ----------------------------------------------------------------------------------


def test_splits_are_seeded_disjoint_and_cover_the_training_set(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=600)
    a, b, c = (_module(tmp_path, split_seed=seed) for seed in (0, 0, 1))
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split].inputs, b.splits[split].inputs)
        assert torch.equal(a.splits[split].targets, b.splits[split].targets)
    assert not torch.equal(a.splits["val"].inputs, c.splits["val"].inputs)
    assert torch.equal(a.splits["test"].inputs, c.splits["test"].inputs)  # the official one
    train, val = _digest(a.splits["train"].inputs), _digest(a.splits["val"].inputs)
    official = mnist.load("mnist", tmp_path, False)["train_images"]
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(_digest(official))


def test_val_size_must_leave_training_samples(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=600)
    assert len(_module(tmp_path, val_size=599).splits["train"]) == 1
    with pytest.raises(ValueError, match=r"^mnist: expected val_size < 600 \(the training set's"):
        _module(tmp_path, val_size=600)


@pytest.mark.parametrize("ratio", [10.0, 100.0])
def test_long_tail_profile(tmp_path: Path, ratio: float):
    write_fake_idx(tmp_path, n_train=10100, n_test=200)
    balanced = _module(tmp_path)
    dm = _module(tmp_path, imbalance_ratio=ratio)
    available = torch.bincount(balanced.splits["train"].targets, minlength=10).tolist()
    n_max = min(available)
    expected = [round(n_max * ratio ** (-c / 9)) for c in range(10)]  # Cui et al. 2019
    counts = dm.data_stats["class_counts"]
    assert counts == expected == long_tail_counts(available, ratio)
    assert counts == torch.bincount(dm.splits["train"].targets, minlength=10).tolist()
    assert counts[0] == n_max and counts == sorted(counts, reverse=True)
    assert counts[0] / counts[-1] == pytest.approx(ratio, rel=0.06)
    for split in ("val", "test"):  # untouched, still balanced
        assert torch.equal(dm.splits[split].inputs, balanced.splits[split].inputs)
        assert torch.equal(dm.splits[split].targets, balanced.splits[split].targets)
    # the kept samples: drawn from the balanced train split, seeded, not sorted by class
    kept = _digest(dm.splits["train"].inputs)
    assert set(kept) <= set(_digest(balanced.splits["train"].inputs))
    assert torch.equal(
        dm.splits["train"].inputs, _module(tmp_path, imbalance_ratio=ratio).splits["train"].inputs
    )
    assert not torch.equal(dm.splits["train"].targets, dm.splits["train"].targets.sort().values)


def test_train_size_keeps_a_seeded_subset_of_the_train_split(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=600)
    full, small = _module(tmp_path), _module(tmp_path, train_size=50)
    assert len(small.splits["train"]) == 50
    assert set(_digest(small.splits["train"].inputs)) <= set(_digest(full.splits["train"].inputs))
    assert torch.equal(small.splits["train"].inputs, full.splits["train"].inputs[:50])
    assert (
        small.data_stats["class_counts"]
        == torch.bincount(small.splits["train"].targets, minlength=10).tolist()
    )
    for split in ("val", "test"):  # untouched
        assert torch.equal(small.splits[split].inputs, full.splits[split].inputs)
    with pytest.raises(ValueError, match=r"^mnist: expected train_size <= 500 \(the train split"):
        _module(tmp_path, train_size=501)


def test_larger_ratio_keeps_a_subset(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=2100)
    ten, hundred = (_module(tmp_path, imbalance_ratio=r) for r in (10, 100))
    assert set(_digest(hundred.splits["train"].inputs)) <= set(_digest(ten.splits["train"].inputs))


def test_balanced_class_counts(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=600)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=100, download=False)
    counts = dm.data_stats["class_counts"]  # sets the module up by itself
    assert sum(counts) == 500 and len(counts) == 10 and min(counts) > 30


def test_fixture_is_learnable_in_a_few_steps(tmp_path: Path):
    torch.manual_seed(0)
    dm = _module(write_fake_idx(tmp_path, n_train=1100, n_test=500), batch_size=64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for inputs, targets in dm.train_dataloader():  # one epoch: 15 steps
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    inputs, targets = next(iter(dm.test_dataloader()))
    assert (model(inputs).argmax(1) == targets).float().mean() > 0.9


# --- Fashion-MNIST ---------------------------------------------------------------------------


def test_fashion_mnist_finds_the_system_directory(tmp_path: Path, monkeypatch):
    calls = _fake_torchvision(monkeypatch, _offline)
    system = write_fake_idx(tmp_path / "usr-share-datasets-fashion-mnist", gz=True)
    monkeypatch.setitem(mnist.SYSTEM_DIRS, "fashion_mnist", [system])
    dm = _module(tmp_path / "empty", name="fashion_mnist", download=True)
    assert not calls and len(dm.splits["test"]) == 200
    assert dm.class_names[0] == "T-shirt/top" and dm.class_names[9] == "Ankle boot"
    inputs, _ = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(inputs, (dm.splits["val"].inputs.float() / 255 - 0.2860) / 0.3530)
    # MNIST never takes Fashion-MNIST's files
    with pytest.raises(DataError, match=r"^mnist: no MNIST IDX files in .*empty"):
        _module(tmp_path / "empty", name="mnist")
    monkeypatch.setitem(mnist.SYSTEM_DIRS, "fashion_mnist", [tmp_path / "nowhere"])
    with pytest.raises(DataError, match=r"^fashion_mnist: no Fashion-MNIST IDX files in .*nowhere"):
        _module(tmp_path / "empty", name="fashion_mnist")


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_debian_fashion_mnist(tmp_path: Path):
    dm = _module(tmp_path, name="fashion_mnist", val_size=5000)
    data = mnist.load("fashion_mnist", tmp_path, False)
    assert len(data["train_images"]) == 60000 and len(data["test_images"]) == 10000
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [55000, 5000, 10000]
    assert torch.bincount(dm.splits["test"].targets).tolist() == [1000] * 10
    normalised = dm.normalise(dm.splits["train"].inputs)  # the constants fit the data
    assert abs(normalised.mean().item()) < 0.01 and abs(normalised.std().item() - 1) < 0.01


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"name": "cifar"},
            ValueError,
            "mnist: expected name in ('mnist', 'fashion_mnist'), got 'cifar'",
        ),
        ({"imbalance_ratio": 0.5}, ValueError, "mnist: expected imbalance_ratio >= 1, got 0.5"),
        (
            {"imbalance_ratio": float("nan")},
            ValueError,
            "mnist: expected a finite imbalance_ratio, got nan",
        ),
        ({"val_size": 0}, ValueError, "mnist: expected val_size >= 1, got 0"),
        ({"train_size": 0}, ValueError, "mnist: expected train_size >= 1, got 0"),
        ({"val_size": 0.1}, TypeError, "mnist: expected val_size as an integer, got 0.1"),
        ({"batch_size": 0}, ValueError, "mnist: expected batch_size >= 1, got 0"),
        ({"eval_batch_size": -1}, ValueError, "mnist: expected eval_batch_size >= 1, got -1"),
        ({"num_workers": -1}, ValueError, "mnist: expected num_workers >= 0, got -1"),
        (
            {"name": "fashion_mnist", "imbalance_ratio": 0},
            ValueError,
            "fashion_mnist: expected imbalance_ratio >= 1, got 0",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, message: str):
    with pytest.raises(error) as raised:
        MNISTDataModule(**kwargs)
    assert str(raised.value) == message
