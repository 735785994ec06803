"""Tests of the synthetic datamodules (segmentation, regression, boxes, retrieval, restoration):
splits, seeds, pinned values, image sizes, contracts.

Fast and offline: the MNIST-sourced variants read a tiny fake IDX directory.
"""

import math
from collections import Counter

import lightning as L
import pytest
import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from datasets.boxes import BoxesDataModule
from datasets.regression import RegressionDataModule, target_function
from datasets.restoration import RestorationDataModule
from datasets.retrieval import PKBatchSampler, RetrievalDataModule
from datasets.segmentation import SegImbalancedDataModule
from trainer.models import MLP, BoxCNN, EmbedCNN, ResidualUNet


def _splits(dm) -> dict:
    dm.setup()
    return dm.splits


def _same(a, b) -> bool:
    return all(
        torch.equal(a.splits[s].inputs, b.splits[s].inputs)
        and torch.equal(a.splits[s].targets, b.splits[s].targets)
        for s in ("train", "val", "test")
    )


@pytest.fixture
def fake_idx_dir(tmp_path):
    """A tiny fake MNIST IDX directory (skips until the fixture and the MNIST module exist)."""
    idx_fixture = pytest.importorskip("idx_fixture")
    pytest.importorskip("datasets.mnist")
    return idx_fixture.write_fake_idx(tmp_path, n_train=600, n_test=200)


# --- regression -----------------------------------------------------------------------------


def test_regression_splits_and_outliers():
    dm = RegressionDataModule(n_train=2000, n_val=500, n_test=500)
    splits = _splits(dm)
    for name, n in (("train", 2000), ("val", 500), ("test", 500)):
        x, y = splits[name].inputs, splits[name].targets
        assert x.dtype == y.dtype == torch.float32
        assert x.shape == (n, 8) and y.shape == (n, 1)
        assert x.min() >= -2 and x.max() <= 2
    # val/test: only the gaussian noise (std 0.1) around f
    for name in ("val", "test"):
        residual = splits[name].targets - target_function(splits[name].inputs)
        assert residual.abs().max() < 0.6
        assert 0.08 < residual.std() < 0.12
    # train: exactly the requested share is corrupted, the rest is clean
    residual = (splits["train"].targets - target_function(splits["train"].inputs))[:, 0]
    assert dm.outliers.shape == (2000,) and int(dm.outliers.sum()) == 400
    assert residual[~dm.outliers].abs().max() < 0.6
    assert (residual[dm.outliers].abs() > 1).float().mean() > 0.8  # heavy-tailed, scale 10
    assert residual[dm.outliers].abs().max() > 100


def test_regression_without_outliers_and_model_inputs():
    dm = RegressionDataModule(n_train=300, n_val=50, n_test=50, outlier_frac=0.0, n_features=10)
    splits = _splits(dm)
    assert not dm.outliers.any()
    residual = splits["train"].targets - target_function(splits["train"].inputs)
    assert residual.abs().max() < 0.6
    assert dm.in_shape == [10] and dm.num_outputs == 1
    assert dm.model_inputs == {"task": "regression", "in_shape": [10], "num_outputs": 1}
    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == (128, 10) and targets.shape == (128, 1)
    assert MLP(dm.in_shape, dm.num_outputs)(inputs).shape == targets.shape


def test_regression_seeded():
    kwargs = dict(n_train=200, n_val=50, n_test=50)
    a, b = RegressionDataModule(**kwargs), RegressionDataModule(**kwargs)
    c = RegressionDataModule(**kwargs, seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert _same(a, b) and not _same(a, c)
    # val/test do not depend on the training size or outlier settings
    d = RegressionDataModule(n_train=100, n_val=50, n_test=50, outlier_frac=0.5)
    d.setup()
    assert torch.equal(a.splits["test"].targets, d.splits["test"].targets)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outlier_frac": 1.5}, "regression: expected outlier_frac >= 0.0 and outlier_frac < 1.0"),
        ({"outlier_frac": 1.0}, "got 1.0"),
        ({"outlier_scale": -1.0}, "regression: expected outlier_scale >= 0.0, got -1.0"),
        ({"n_features": 4}, "regression: expected n_features >= 8, got 4"),
        ({"noise": -0.1}, "regression: expected noise >= 0.0"),
        ({"n_train": 0}, "regression: expected n_train >= 1, got 0"),
    ],
)
def test_regression_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RegressionDataModule(**kwargs)


# --- boxes ----------------------------------------------------------------------------------


def test_boxes_splits_valid():
    dm = BoxesDataModule(n_train=500, n_val=100, n_test=100)
    splits = _splits(dm)
    for name, n in (("train", 500), ("val", 100), ("test", 100)):
        images, boxes = splits[name].inputs, splits[name].targets
        assert images.dtype == boxes.dtype == torch.float32
        assert images.shape == (n, 1, 32, 32) and boxes.shape == (n, 4)
        assert images.min() >= 0 and images.max() <= 1
        assert (boxes >= 0).all() and (boxes <= 1).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        sides = (boxes[:, 2:] - boxes[:, :2]) * 32
        assert sides.min() >= 3 - 1e-4 and sides.max() <= 24 + 1e-4
        assert torch.allclose(boxes * 32, (boxes * 32).round(), atol=1e-4)  # pixel edges
    assert dm.num_outputs == 4 and dm.in_shape == [1, 32, 32]
    inputs, _ = next(iter(dm.train_dataloader()))
    assert inputs.shape == (64, 1, 32, 32)
    model = BoxCNN(dm.model_inputs["in_channels"], width=4)
    assert model(inputs).shape == (64, 4)


def test_boxes_match_rendered_rectangle():
    dm = BoxesDataModule(n_train=300, n_val=10, n_test=10, noise=0.0)
    images, boxes = _splits(dm)["train"].inputs[:, 0], _splits(dm)["train"].targets
    # noise-free: two grey levels, the brighter one exactly the rectangle
    mask = images > images.amin(dim=(1, 2), keepdim=True) + 0.1
    rows, cols = mask.any(dim=2), mask.any(dim=1)
    pixels = torch.arange(32)
    x1 = torch.where(cols, pixels, 99).amin(dim=1)
    x2 = torch.where(cols, pixels, -1).amax(dim=1) + 1
    y1 = torch.where(rows, pixels, 99).amin(dim=1)
    y2 = torch.where(rows, pixels, -1).amax(dim=1) + 1
    rendered = torch.stack([x1, y1, x2, y2], dim=1).float() / 32
    assert torch.allclose(rendered, boxes)
    area = ((boxes[:, 2:] - boxes[:, :2]) * 32).prod(dim=1)
    assert torch.equal(mask.sum(dim=(1, 2)).float(), area.round())  # filled, not outlined
    # with noise the rectangle is still the brighter region
    noisy = BoxesDataModule(n_train=50, n_val=10, n_test=10)
    images, boxes = _splits(noisy)["train"].inputs[:, 0], _splits(noisy)["train"].targets
    for image, box in zip(images, (boxes * 32).round().long(), strict=True):
        x1, y1, x2, y2 = box.tolist()
        inside = torch.zeros_like(image, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        assert image[inside].mean() > image[~inside].mean() + 0.2


def test_boxes_seeded_and_bad_args():
    kwargs = dict(n_train=50, n_val=10, n_test=10)
    a, b, c = (
        BoxesDataModule(**kwargs),
        BoxesDataModule(**kwargs),
        BoxesDataModule(**kwargs, seed=3),
    )
    for dm in (a, b, c):
        dm.setup()
    assert _same(a, b) and not _same(a, c)
    with pytest.raises(ValueError, match="boxes: expected min_side >= 1 and min_side <= 32, got 0"):
        BoxesDataModule(min_side=0)
    with pytest.raises(
        ValueError, match="boxes: expected max_side >= 3 and max_side <= 32, got 40"
    ):
        BoxesDataModule(max_side=40)
    with pytest.raises(ValueError, match=r"boxes: expected noise >= 0\.0, got -1"):
        BoxesDataModule(noise=-1)


# --- retrieval ------------------------------------------------------------------------------


def test_retrieval_glyph_splits_hold_out_classes():
    dm = RetrievalDataModule()
    splits = _splits(dm)
    sizes = {"train": 50 * 40, "val": 50 * 20, "test": 50 * 20}
    for name, split in splits.items():
        assert split.inputs.dtype == torch.float32 and split.targets.dtype == torch.int64
        assert split.inputs.shape == (sizes[name], 1, 28, 28)
        assert split.inputs.min() >= 0 and split.inputs.max() <= 1
        assert split.inputs.mean() > 0.05  # ink was drawn
    train, val, test = (set(splits[s].targets.tolist()) for s in ("train", "val", "test"))
    assert train == set(range(50))
    assert val == test == set(range(50, 100))
    assert not train & val
    assert Counter(splits["val"].targets.tolist()) == dict.fromkeys(range(50, 100), 20)
    assert dm.num_classes == 100
    assert dm.data_stats == {"class_counts": [40] * 50}
    assert dm.in_shape == [1, 28, 28]
    assert "num_outputs" not in dm.model_inputs
    assert dm.model_inputs["in_channels"] == 1 and dm.model_inputs["image_size"] == 28
    model = EmbedCNN(in_channels=1, num_outputs=8, width=4)
    assert model(splits["val"].inputs[:4]).shape == (4, 8)


def test_retrieval_glyphs_differ_between_classes_more_than_within():
    dm = RetrievalDataModule(n_classes=20, n_train_classes=10, samples_per_class=10, noise=0.0)
    images = _splits(dm)["train"].inputs.flatten(1)
    labels = dm.splits["train"].targets
    distance = torch.cdist(images, images)
    same = labels[:, None] == labels[None]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    assert distance[same & off_diagonal].mean() < distance[~same].mean()


def test_retrieval_seeded():
    kwargs = dict(n_classes=10, n_train_classes=5, samples_per_class=6)
    a, b = RetrievalDataModule(**kwargs), RetrievalDataModule(**kwargs)
    c = RetrievalDataModule(**kwargs, seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert _same(a, b) and not _same(a, c)


def test_pk_batches():
    dm = RetrievalDataModule(p=8, k=4)
    loader = dm.train_dataloader()
    assert len(loader) == 2000 // 32
    epochs = []
    for epoch in (0, 1, 0):
        loader.batch_sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == 2000 // 32
        for inputs, labels in batches:
            assert inputs.shape == (32, 1, 28, 28)
            counts = Counter(labels.tolist())
            assert len(counts) == 8 and set(counts.values()) == {4}
            assert all(label < 50 for label in counts)
        epochs.append(torch.cat([labels for _, labels in batches]))
    assert not torch.equal(epochs[0], epochs[1])  # epochs differ
    assert torch.equal(epochs[0], epochs[2])  # an epoch repeats
    # without set_epoch, each new pass still draws new batches
    sampler = PKBatchSampler(dm.splits["train"].targets, p=4, k=2, seed=0)
    assert list(sampler) != list(sampler)


def test_pk_sampler_small_classes_and_length():
    labels = [0, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    sampler = PKBatchSampler(labels, p=4, k=3, seed=0, drop_last=False)
    assert len(sampler) == 1
    (batch,) = list(sampler)
    assert len(batch) == 12
    # class 0 has one sample and class 1 two: drawn with replacement, K of each all the same
    assert Counter(labels[i] for i in batch) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert len({i for i in batch if labels[i] == 2}) == 3  # without replacement when possible
    assert len(PKBatchSampler(list(range(10)) * 10, p=4, k=4, drop_last=True)) == 6
    assert len(PKBatchSampler(list(range(10)) * 10, p=4, k=4, drop_last=False)) == 7
    a = [list(PKBatchSampler(labels, p=2, k=2, seed=s)) for s in (0, 0, 1)]
    assert a[0] == a[1] != a[2]
    # DDP: each process draws its own batches, an epoch split between the processes
    ranks = [
        PKBatchSampler(list(range(10)) * 10, p=4, k=4, seed=0, num_replicas=2, rank=r)
        for r in (0, 1)
    ]
    assert [len(r) for r in ranks] == [3, 3]
    assert list(ranks[0]) != list(ranks[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 1}, "retrieval: expected p >= 2, got 1"),
        ({"k": 1}, "retrieval: expected k >= 2, got 1"),
        (
            {"source": "cifar"},
            "retrieval: expected source in \\('glyphs', 'mnist', 'fashion_mnist'",
        ),
        (
            {"n_train_classes": 100},
            "retrieval: expected n_train_classes >= 2 and n_train_classes <",
        ),
        ({"samples_per_class": 1}, "retrieval: expected samples_per_class >= 2, got 1"),
        ({"stroke_jitter": -1.0}, "retrieval: expected stroke_jitter >= 0.0, got -1.0"),
    ],
)
def test_retrieval_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetrievalDataModule(**kwargs)


def test_pk_sampler_bad_args():
    with pytest.raises(ValueError, match="PKBatchSampler: expected p >= 2, got 1"):
        PKBatchSampler([0, 1], p=1, k=2)
    with pytest.raises(ValueError, match="PKBatchSampler: expected k >= 2, got 0"):
        PKBatchSampler([0, 1], p=2, k=0)
    with pytest.raises(ValueError, match="PKBatchSampler: expected p <= the 2 classes, got 3"):
        PKBatchSampler([0, 1], p=3, k=2)
    with pytest.raises(ValueError, match="PKBatchSampler: expected rank >= 0 and rank < 2, got 2"):
        PKBatchSampler([0, 1], p=2, k=2, num_replicas=2, rank=2)


def test_retrieval_from_mnist(fake_idx_dir):
    dm = RetrievalDataModule(
        source="mnist", data_dir=str(fake_idx_dir), download=False, val_size=100
    )
    splits = _splits(dm)
    inputs, labels = splits["val"].__getitems__(list(range(8)))
    assert inputs.dtype == torch.float32 and inputs.min() >= 0 and inputs.max() <= 1
    assert labels.dtype == torch.int64
    assert dm.num_classes == 10 and len(dm.data_stats["class_counts"]) == 10
    loader = dm.train_dataloader()  # p=16 is capped at MNIST's 10 classes
    inputs, labels = next(iter(loader))
    assert inputs.shape == (40, 1, 28, 28) and inputs.max() <= 1
    assert set(Counter(labels.tolist()).values()) == {4}


# --- restoration ----------------------------------------------------------------------------


def test_restoration_shapes_splits():
    dm = RestorationDataModule(n_train=300, n_val=50, n_test=50)
    splits = _splits(dm)
    for name, n in (("train", 300), ("val", 50), ("test", 50)):
        noisy, clean = splits[name].inputs, splits[name].targets
        assert noisy.dtype == clean.dtype == torch.float32
        assert noisy.shape == clean.shape == (n, 1, 32, 32)
        for t in (noisy, clean):
            assert t.min() >= 0 and t.max() <= 1
        error = (noisy - clean).abs().mean()
        assert 0.08 < error < 0.2  # gaussian 0.2, clamped
        assert clean.std(dim=(1, 2, 3)).min() > 0.05  # every image has structure
    assert dm.num_outputs == dm.in_channels == 1 and dm.in_shape == [1, 32, 32]
    assert dm.model_inputs["num_outputs"] == 1 and dm.model_inputs["image_size"] == 32
    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == targets.shape == (32, 1, 32, 32)
    model = ResidualUNet(dm.model_inputs["in_channels"], width=4, image_size=dm.image_size)
    assert model(inputs).shape == targets.shape


def test_restoration_noise_kinds():
    kwargs = dict(n_train=100, n_val=20, n_test=20)
    splits = {
        noise: _splits(RestorationDataModule(**kwargs, noise=noise))["train"]
        for noise in ("gaussian", "salt_pepper", "mixed")
    }
    clean = splits["gaussian"].targets
    for split in splits.values():
        assert torch.equal(split.targets, clean)  # same clean images, differently corrupted
    noisy = {k: v.inputs for k, v in splits.items()}
    assert not torch.equal(noisy["gaussian"], noisy["salt_pepper"])
    assert not torch.equal(noisy["gaussian"], noisy["mixed"])
    changed = noisy["salt_pepper"] != clean
    assert 0.17 < changed.float().mean() < 0.21  # 20 % flipped (a few already were 0/1)
    assert set(noisy["salt_pepper"][changed].unique().tolist()) <= {0.0, 1.0}
    assert (noisy["gaussian"] != clean).float().mean() > 0.9
    for noise in ("gaussian", "salt_pepper", "mixed"):
        split = _splits(RestorationDataModule(**kwargs, noise=noise, strength=0.0))["val"]
        assert torch.equal(split.inputs, split.targets)


def test_restoration_seeded():
    kwargs = dict(n_train=40, n_val=10, n_test=10, noise="mixed")
    a, b = RestorationDataModule(**kwargs), RestorationDataModule(**kwargs)
    c = RestorationDataModule(**kwargs, seed=2)
    for dm in (a, b, c):
        dm.setup()
    assert _same(a, b) and not _same(a, c)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"noise": "poisson"},
            r"restoration: expected noise in \('gaussian', 'salt_pepper', 'mixed'\), "
            "got 'poisson'",
        ),
        ({"strength": 1.5}, "restoration: expected strength >= 0.0 and strength <= 1.0, got 1.5"),
        ({"strength": -0.1}, "restoration: expected strength >= 0.0 and strength <= 1.0"),
        ({"source": "cifar"}, "restoration: expected source in \\('shapes', 'mnist'"),
    ],
)
def test_restoration_bad_args(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RestorationDataModule(**kwargs)


def test_restoration_from_mnist(fake_idx_dir):
    dm = RestorationDataModule(
        source="fashion_mnist",
        noise="salt_pepper",
        data_dir=str(fake_idx_dir),
        download=False,
        val_size=100,
        n_train=300,
    )
    splits = _splits(dm)
    assert len(splits["train"]) == 300 and len(splits["val"]) == 100
    for split in splits.values():
        assert split.inputs.dtype == split.targets.dtype == torch.float32
        assert split.inputs.shape[1:] == (1, 28, 28) and split.targets.shape == split.inputs.shape
        assert split.targets.min() >= 0 and split.targets.max() <= 1
        assert not torch.equal(split.inputs, split.targets)
    assert dm.image_size == 28 and dm.in_shape == [1, 28, 28]


class _RecordLabels(L.LightningModule):
    """Trains nothing useful: records each training batch's labels, per epoch, and checks that
    Lightning told the batch sampler the epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(28 * 28, 2)
        self.seen: dict[int, list[list[int]]] = {}

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        assert self.trainer.train_dataloader.batch_sampler.epoch == self.current_epoch
        self.seen.setdefault(self.current_epoch, []).append(labels.tolist())
        return self.layer(inputs.flatten(1)).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit_record(seed: int) -> dict[int, list[list[int]]]:
    L.seed_everything(seed, verbose=False)
    dm = RetrievalDataModule(n_classes=12, n_train_classes=8, samples_per_class=8, p=4, k=2)
    module = _RecordLabels()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=dm)
    return module.seen


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no")
@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_pk_batches_under_lightning():
    first, again, other = _fit_record(0), _fit_record(0), _fit_record(1)
    assert sorted(first) == [0, 1] and len(first[0]) == 64 // 8
    for batch in first[0] + first[1]:
        assert set(Counter(batch).values()) == {2} and len(set(batch)) == 4
    assert first[0] != first[1]  # Lightning's set_epoch reaches the sampler
    assert first == again  # and the run repeats with its seed
    assert first != other


# --- pinned data: the generated values must not move (same seeds, same draw order) -------------


def test_boxes_pinned_and_inside_the_image():
    dm = BoxesDataModule(n_train=5, n_val=1, n_test=1, noise=0.0)
    images, boxes = _splits(dm)["train"].inputs[:, 0], dm.splits["train"].targets
    pixel_boxes = (boxes * 32).round().long()
    assert pixel_boxes.tolist() == [
        [6, 9, 19, 19],
        [0, 2, 4, 19],
        [3, 14, 25, 20],
        [10, 15, 28, 29],
        [2, 3, 22, 25],
    ]
    # the two grey levels (background, background + contrast), to the 6 decimals written here:
    # half a unit of the last one, plus the rounding of the float32 literal
    background = torch.tensor([0.272643, 0.366078, 0.15884, 0.349662, 0.167763])
    bright = torch.tensor([0.76087, 0.954262, 0.517881, 0.74597, 0.611118])
    assert torch.allclose(images.amin(dim=(1, 2)), background, rtol=0, atol=1e-6)
    assert torch.allclose(images.amax(dim=(1, 2)), bright, rtol=0, atol=1e-6)
    for image, (x1, y1, x2, y2) in zip(images, pixel_boxes.tolist(), strict=True):
        assert 0 <= x1 < x2 <= 32 and 0 <= y1 < y2 <= 32
        inside = torch.zeros(32, 32, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        # noise-free: the box is exactly the brighter of the two grey levels
        assert torch.equal(inside, image > image.min())


def test_segmentation_pinned_and_foreground_share():
    dm = SegImbalancedDataModule(n_train=6, n_val=2, n_test=2, image_size=32, noise=0.0)
    images, masks = _splits(dm)["train"].inputs, dm.splits["train"].targets
    assert masks.sum(dim=(1, 2, 3)).long().tolist() == [15, 26, 18, 29, 18, 13]
    image_means = torch.tensor([0.231557, 0.260468, 0.266037, 0.255043, 0.244037, 0.277735])
    # to the 6 decimals written here (a float32 mean of 1024 pixels rounds at ~1e-7)
    assert torch.allclose(images.mean(dim=(1, 2, 3)), image_means, rtol=0, atol=1e-6)
    assert dm.data_stats == {"class_counts": [6 * 32 * 32 - 119, 119]}
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    # noise-free: foreground = background in [0, 0.4] + 0.6, so every mask pixel is bright
    assert images[masks == 1].min() >= 0.6 - 1e-6
    # many images: the foreground share is the requested 2 % (area drawn in 0.6-1.4x the share,
    # disks cut to whole pixels and overlapping: a few tenths of a percent either way)
    many = SegImbalancedDataModule(n_train=300, n_val=1, n_test=1)
    assert abs(_splits(many)["train"].targets.mean().item() - 0.02) < 0.004


def _f64(x: torch.Tensor) -> torch.Tensor:
    """The regression target f written out again in float64, apart from ``target_function``."""
    x = x.double()
    return (
        2 * torch.sin(x[:, 0])
        + x[:, 1] * x[:, 2]
        + 0.5 * x[:, 3] ** 2
        + torch.tanh(2 * x[:, 4])
        + 0.5 * x[:, 5]
        + torch.cos(x[:, 6]) * x[:, 7]
    )


def test_regression_pinned_and_noise_free_targets():
    dm = RegressionDataModule(n_train=10, n_val=3, n_test=3)
    splits = _splits(dm)
    assert dm.outliers.nonzero().flatten().tolist() == [4, 5]
    expected_x0 = [
        1.030526,
        -0.882756,
        -0.387723,
        0.938738,
        -1.882874,
        1.199435,
        -0.411451,
        1.017488,
    ]
    # float32 data written to 6 decimals: half a unit of the last one, plus the literal's rounding
    assert torch.allclose(splits["val"].inputs[0], torch.tensor(expected_x0), rtol=0, atol=1e-6)
    assert torch.allclose(
        splits["val"].targets[:, 0],
        torch.tensor([3.011827, 0.651375, -1.528235]),
        rtol=0,
        atol=1e-6,
    )
    clean = RegressionDataModule(n_train=10, n_val=50, n_test=3, noise=0.0)
    x, y = _splits(clean)["val"].inputs, clean.splits["val"].targets[:, 0]
    # float32 evaluation of f (|f| < 10) against float64: a few float32 ulps
    assert torch.allclose(y.double(), _f64(x), rtol=0, atol=1e-5)


def test_restoration_and_retrieval_pinned():
    dm = RestorationDataModule(n_train=3, n_val=1, n_test=1)
    noisy, clean = _splits(dm)["train"].inputs, dm.splits["train"].targets
    # image means of float32 images, compared to 1e-6: sums of 1024 pixels round at ~1e-7
    assert torch.allclose(
        clean.mean(dim=(1, 2, 3)), torch.tensor([0.398645, 0.309491, 0.291963]), atol=1e-6
    )
    assert torch.allclose(
        noisy.mean(dim=(1, 2, 3)), torch.tensor([0.407611, 0.319659, 0.297162]), atol=1e-6
    )
    glyphs = RetrievalDataModule(n_classes=4, n_train_classes=2, samples_per_class=2)
    train = _splits(glyphs)["train"]
    assert train.targets.tolist() == [0, 0, 1, 1]
    assert torch.allclose(
        train.inputs.mean(dim=(1, 2, 3)),
        torch.tensor([0.160692, 0.176275, 0.144850, 0.086942]),
        atol=1e-6,
    )


# --- restoration image sizes ----------------------------------------------------------------


def test_restoration_192px_fits_five_scale_ms_ssim():
    dm = RestorationDataModule(n_train=4, n_val=2, n_test=2, image_size=192)
    splits = _splits(dm)
    for name, n in (("train", 4), ("val", 2), ("test", 2)):
        noisy, clean = splits[name].inputs, splits[name].targets
        assert noisy.shape == clean.shape == (n, 1, 192, 192)
        assert noisy.dtype == clean.dtype == torch.float32
        for t in (noisy, clean):
            assert t.min() >= 0 and t.max() <= 1
        assert clean.std(dim=(1, 2, 3)).min() > 0.05  # shapes were drawn
        assert 0.08 < (noisy - clean).abs().mean() < 0.2  # gaussian 0.2, clamped
    assert dm.model_inputs == {
        "task": "restoration",
        "in_shape": [1, 192, 192],
        "in_channels": 1,
        "image_size": 192,
        "num_outputs": 1,
    }
    inputs, targets = next(iter(dm.train_dataloader()))
    model = ResidualUNet(dm.model_inputs["in_channels"], width=2, depth=2, image_size=192)
    assert model(inputs).shape == targets.shape == (4, 1, 192, 192)
    # torchmetrics' MS-SSIM with its five default scales accepts 192 px, and refuses 32 px
    score = multiscale_structural_similarity_index_measure(noisy, clean, data_range=1.0)
    assert 0 < score.item() < 1
    small = _splits(RestorationDataModule(n_train=2, n_val=1, n_test=1))["test"]
    with pytest.raises(ValueError, match="the image height must be larger than 160"):
        multiscale_structural_similarity_index_measure(small.inputs, small.targets, data_range=1.0)


def test_restoration_192px_config_builds_data_and_model(make_cfg):
    """``data=restoration data.image_size=192`` through Hydra, data then model as ``train.py``."""
    from hydra.utils import instantiate

    from trainer.config import instantiate_with_data

    cfg = make_cfg(
        "data=restoration", "data.image_size=192", "data.n_train=4", "data.n_val=2", "data.n_test=2"
    )
    datamodule = instantiate(cfg.data)
    model = instantiate_with_data(cfg.model, datamodule.model_inputs)
    inputs, targets = next(iter(datamodule.val_dataloader()))
    assert inputs.shape == targets.shape == (2, 1, 192, 192)
    assert model(inputs).shape == (2, 1, 192, 192)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"source": "mnist", "image_size": 192},
            r"restoration: expected image_size null or 28 with source=mnist \(its images are "
            r"28 x 28; other sizes need source=shapes\), got 192",
        ),
        ({"source": "fashion_mnist", "image_size": 32}, "with source=fashion_mnist"),
        ({"image_size": 4}, "restoration: expected image_size >= 8, got 4"),
    ],
)
def test_restoration_image_size_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        RestorationDataModule(**kwargs)
    assert "\n" not in str(error.value)  # one line


def test_restoration_image_size_defaults_per_source():
    assert RestorationDataModule().image_size == 32
    assert RestorationDataModule(source="mnist").image_size == 28  # nothing read before setup
    assert RestorationDataModule(source="mnist", image_size=28).image_size == 28
    assert math.prod(RestorationDataModule(image_size=64).in_shape) == 64 * 64
