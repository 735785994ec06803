"""MNIST-family data: offline IDX reading, the one-line error, corrupt files, splits, long tail."""

from pathlib import Path

import pytest
import torch
from idx_fixture import idx_bytes, write_fake_idx

from datasets import mnist
from datasets.mnist import DataError, MNISTDataModule, long_tail_counts, read_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_reads_local_idx_files_offline(tmp_path: Path, gz: bool, layout: str):
    write_fake_idx(tmp_path, n_train=600, n_test=200, gz=gz, layout=layout)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=100, download=False)
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [500, 100, 200]
    inputs, target = next(iter(dm.train_dataloader()))
    assert inputs.shape == (128, 1, 28, 28) and inputs.dtype == torch.float32
    assert target.dtype == torch.int64
    assert -1 < inputs.mean() < 2  # normalised, not 0..255


def test_missing_files_give_one_line_naming_dir_and_files(tmp_path: Path, monkeypatch):
    def no_network(*args, **kwargs):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\n  <urlopen error [Errno -3]>"
        )

    import torchvision

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_network)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True)
    with pytest.raises(DataError) as error:
        dm.setup()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"mnist: no IDX files in {tmp_path.resolve()} (looked in {tmp_path.resolve()}, "
    )
    assert (
        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz]"
        in message
    )
    assert message.endswith(
        "download failed: Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -3]>"
    )


def test_download_false_says_so(tmp_path: Path):
    with pytest.raises(DataError, match=r"; download=false$"):
        MNISTDataModule(data_dir=str(tmp_path), download=False).setup()


def test_wrong_magic_and_truncated_files_are_named(tmp_path: Path):
    write_fake_idx(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x04\xd2" + labels.read_bytes()[4:])
    with pytest.raises(DataError, match=f"mnist: {labels} has magic number 1234, expected 2049"):
        read_idx(labels)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(
        DataError, match=f"mnist: {images} is truncated: expected 470400 bytes of data, got 984"
    ):
        read_idx(images)


def test_splits_are_seeded_and_disjoint(tmp_path: Path):
    write_fake_idx(tmp_path, n_train=600)
    a, b, c = (
        MNISTDataModule(data_dir=str(tmp_path), val_size=100, split_seed=s, download=False)
        for s in (0, 0, 1)
    )
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.splits["val"].inputs, b.splits["val"].inputs)
    assert not torch.equal(a.splits["val"].inputs, c.splits["val"].inputs)
    train_rows = {tuple(x.flatten().tolist()) for x in a.splits["train"].inputs}
    assert not any(tuple(x.flatten().tolist()) in train_rows for x in a.splits["val"].inputs)


@pytest.mark.parametrize("ratio", [10.0, 100.0])
def test_long_tail_profile(tmp_path: Path, ratio: float):
    write_fake_idx(tmp_path, n_train=10100, n_test=200)
    dm = MNISTDataModule(
        data_dir=str(tmp_path), val_size=100, imbalance_ratio=ratio, download=False
    )
    counts = dm.data_stats["class_counts"]
    assert counts == long_tail_counts(
        [counts[0]] * 10, ratio
    )  # n_max: the smallest class available
    assert 985 <= counts[0] <= 1000
    assert counts[0] / counts[-1] == pytest.approx(ratio, rel=0.05)
    balanced = MNISTDataModule(data_dir=str(tmp_path), val_size=100, download=False)
    balanced.setup()
    assert torch.equal(dm.splits["val"].targets, balanced.splits["val"].targets)  # untouched
    assert len(dm.splits["test"]) == 200


def test_fashion_mnist_finds_the_debian_directory(tmp_path: Path, monkeypatch):
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    write_fake_idx(system, gz=True)
    monkeypatch.setitem(mnist.SYSTEM_DIRS, "fashion_mnist", [system])
    dm = MNISTDataModule(
        name="fashion_mnist", data_dir=str(tmp_path / "empty"), val_size=100, download=False
    )
    dm.setup()
    assert len(dm.splits["test"]) == 200 and dm.class_names[0] == "T-shirt/top"


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist absent"
)
def test_real_debian_fashion_mnist():
    dm = MNISTDataModule(name="fashion_mnist", data_dir="/nonexistent", download=False)
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [55000, 5000, 10000]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "cifar"}, "mnist: expected name in ('mnist', 'fashion_mnist'), got 'cifar'"),
        ({"imbalance_ratio": 0.5}, "mnist: expected imbalance_ratio >= 1.0, got 0.5"),
        ({"val_size": 0}, "mnist: expected val_size >= 1"),
        ({"batch_size": 0}, "mnist: expected batch_size >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        MNISTDataModule(**kwargs)
    assert str(error.value).startswith(message)


def test_idx_header_roundtrip():
    assert idx_bytes(torch.zeros(3, dtype=torch.uint8))[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x03"
