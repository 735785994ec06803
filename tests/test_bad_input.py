"""Bad input is answered before training with one clear line (``train.py: ...``, exit code 1);
``HYDRA_FULL_ERROR=1`` brings the traceback back. Each row: overrides -> the line's text."""

import shutil
from collections.abc import Callable
from pathlib import Path

import file_data
import numpy as np
import pytest
import torch
from PIL import Image
from task_examples import tiny_budget
from train_cli import run_train

from losses.checks import values_checkable
from losses.classification import CrossEntropy
from train import train
from trainer.cli import one_line, unknown_choice
from trainer.config import instantiate_with_data
from trainer.module import LossExperiment
from trainer.preflight import preflight
from trainer.tasks import build_task

ROOT = Path(__file__).resolve().parent.parent

# overrides, the message (a substring of the one line)
CONFIG_ROWS = [
    (["loss=dice", "loss.eps=-1"], "dice: expected eps > 0.0, got -1"),
    (["loss=dice", "loss.eps=0"], "dice: expected eps > 0.0, got 0"),
    (["loss=tversky", "loss.alpha=-0.5"], "tversky: expected alpha >= 0.0, got -0.5"),
    (["loss=ohem_bce", "loss.negative_ratio=0"], "ohem_bce: expected negative_ratio > 0.0, got 0"),
    (
        ["loss=balanced_bce", "loss.beta=1.5"],
        "balanced_bce: expected beta >= 0.0 and beta <= 1.0, got 1.5",
    ),
    (
        ["loss=bce", "loss.reduction=average"],
        "bce: expected reduction in ('mean', 'sum', 'none'), got 'average'",
    ),
    (["loss=combo", "loss.weights.dice=-1"], "combo: expected weight of 'dice' >= 0.0, got -1"),
    (["loss=combo", "+loss.weights.focal=1"], "combo:"),
    (
        ["data.foreground_share=0.9"],
        "seg_imbalanced: expected foreground_share > 0.0 and foreground_share <= 0.5",
    ),
    (["data.foreground_share=0"], "seg_imbalanced: expected foreground_share > 0.0"),
    (["data.image_size=8"], "seg_imbalanced: expected image_size >= 16, got 8"),
    (["data.n_train=0"], "seg_imbalanced: expected n_train >= 1, got 0"),
    (["data.noise=-0.1"], "seg_imbalanced: expected noise >= 0.0, got -0.1"),
    (
        ["data.image_size=34", "model.depth=2"],
        "unet: image_size 34 is not divisible by 2**depth = 4",
    ),
    # model=timm, model=smp: a name the library does not know, a model that does not fit the data
    (
        ["data=mnist", "model=timm", "model.name=resnet1800"],
        "timm: unknown timm model 'resnet1800'; close names: resnet18, resnet200, resnet18d, "
        "resnet10t, resnet101; more: timm.list_models('*resnet*')",
    ),
    (
        ["model=timm"],
        "model=timm does not fit data=seg_imbalanced (task segmentation); "
        "it fits tasks classification, retrieval",
    ),
    (
        ["data=mnist", "model=timm", "model.name=vit_tiny_patch16_224"],
        "timm vit_tiny_patch16_224: cannot take 28x28 images: Input height (28) doesn't match "
        "model (224); a model built for one size takes +model.extra.img_size=28",
    ),
    (
        ["model=smp", "model.arch=FPN", "model.encoder_depth=5", "data.image_size=48"],
        "smp: image_size 48 is not divisible by 32, the output stride of FPN with encoder "
        "resnet18, encoder_depth=5; set data.image_size=64 or model.encoder_depth=4",
    ),
    (
        ["model=smp", "model.encoder=resnet1800"],
        "smp: unknown encoder 'resnet1800'; close names: resnet18,",
    ),
    (
        ["data=boxes", "model=smp"],
        "model=smp does not fit data=boxes (task boxes); it fits tasks segmentation, restoration",
    ),
    (["nan_policy=ignore"], "nan_policy: expected one of ('skip', 'stop', 'raise'), got 'ignore'"),
    (["callbacks.nonfinite.max_consecutive=0"], "nan_policy: expected max_consecutive >= 1, got 0"),
    (["test_ckpt=first"], "test_ckpt: expected best or last, got 'first'"),
    (["loss=focal", "loss.gamma=-1"], "focal: expected gamma >= 0.0, got -1"),
    (["loss=focal", "loss.alpha=1.5"], "focal: expected alpha >= 0.0 and alpha <= 1.0, got 1.5"),
    (
        ["loss=ce"],
        "loss=ce does not fit data=seg_imbalanced (task segmentation); losses that fit: balanced_bce, bce",
    ),
    (
        ["data=mnist", "loss=dice"],
        "loss=dice does not fit data=mnist (task classification); losses that fit: bce_onehot",
    ),
    (["data=mnist", "data.imbalance_ratio=0.5"], "mnist: expected imbalance_ratio >= 1"),
    (
        ["data=mnist", "loss=class_weighted_ce", "loss.beta=1.0"],
        "class_weighted_ce: expected beta > 0.0 and beta < 1.0, got 1.0",
    ),
    (
        ["data=mnist", "loss=kl_div", "loss.smoothing=1.0"],
        "kl_div: expected smoothing >= 0.0 and smoothing < 1.0, got 1.0",
    ),
    (
        ["data=regression", "data.outlier_frac=1.5"],
        "regression: expected outlier_frac >= 0.0 and outlier_frac < 1.0, got 1.5",
    ),
    (["data=regression", "loss=huber", "loss.delta=0"], "huber: expected delta > 0.0, got 0"),
    (["data=boxes", "loss=giou", "loss.eps=0"], "giou: expected eps > 0.0, got 0"),
    (
        ["data=restoration", "loss=ssim", "data.image_size=8"],
        "ssim: expected images of at least 11x11 pixels (the gaussian window), got 8x8",
    ),
    (["data=restoration", "data.noise=poisson"], "restoration: expected noise in"),
    (
        ["data=mask_folder", "data.image_size=30"],
        "unet: image_size 30 is not divisible by 2**depth = 4",
    ),
    (
        ["data=mask_folder", "data.mask_threshold=255"],
        "mask_folder: expected mask_threshold >= 0 and mask_threshold < 255, got 255",
    ),
    (["data=clean_folder", "data.noise=poisson"], "clean_folder: expected noise in"),
    (
        ["data=box_csv", "data.channels=2"],
        "box_csv: expected data.channels 1 (grayscale) or 3 (RGB), got 2",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"), CONFIG_ROWS, ids=[" ".join(o) for o, _ in CONFIG_ROWS]
)
def test_bad_config_is_one_line_before_training(
    make_cfg, tmp_path: Path, overrides: list[str], message: str
):
    with pytest.raises(Exception) as error:
        train(make_cfg(*overrides))
    line = one_line(error.value)
    assert line is not None and "\n" not in line
    assert message in line
    assert not list(tmp_path.glob("events.out.tfevents.*")), "training started"


def _table_rows():
    """The tiny regression table ``data=table``'s tests read (tests/file_data.py's export)."""
    import pandas as pd

    return pd.read_csv(file_data.root("table") / "regression.csv")


def _blank(frame, column: str, row: int, value=""):
    """``frame`` with data row ``row`` (1-based) of ``column`` set to ``value``, as text."""
    frame = frame.astype({column: object})
    frame.loc[row - 1, column] = value
    return frame


# file name, how the tiny table is changed (None: no file), overrides, the message ({path}: file)
TABLE_ROWS = [
    ("absent.csv", None, [], "table: {path} does not exist"),
    (
        "rows.txt",
        lambda f: f,
        [],
        "table: {path} has the suffix '.txt'; expected a table file ending in .csv or .parquet",
    ),
    (
        "rows.csv",
        lambda f: f,
        ["data.target=price"],
        "table: {path} has no column 'price' (data.target); its columns: x1, x2, x3, x4, x5, x6, x7, x8, y, split",
    ),
    (
        "rows.csv",
        lambda f: _blank(f, "x3", 5),
        [],
        "table: {path}: column 'x3' (a feature: data.features is null) has 1 missing or non-finite values (an empty cell, NaN or inf), the first in data row 5 (nan)",
    ),
    (
        "rows.csv",
        lambda f: _blank(_blank(f, "y", 9, "nan"), "y", 300),
        [],
        "table: {path}: column 'y' (data.target) has 2 missing or non-finite values (an empty cell, NaN or inf), the first in data row 9 (nan)",
    ),
    (
        "rows.csv",
        lambda f: f.assign(city=["paris", "oslo"] * (len(f) // 2)),
        ["data.features=[x1,city]"],
        "table: {path}: column 'city' (data.features) is not numeric: data row 1 holds 'paris'",
    ),
    (
        "rows.csv",
        lambda f: _blank(f, "x8", 17, "1,5"),
        [],
        "table: {path}: column 'x8' (a feature: data.features is null) is not numeric: data row 17 holds '1,5'",
    ),
    (
        "rows.csv",
        lambda f: f,
        ["data.batch_size=300"],
        "table: {path}: the training split has 256 rows, fewer than one batch (data.batch_size=300)",
    ),
    (
        "rows.csv",
        lambda f: _blank(f, "split", 3, "training"),
        [],
        "table: {path}: column 'split' (data.split_column) holds 'training' in data row 3; expected train, val, test",
    ),
    (
        "rows.csv",
        lambda f: f,
        ["data.features=[x1,y]"],
        "table: data.features names 'y', which is data.target",
    ),
    ("rows.parquet", "not parquet", [], "table: cannot read {path}: "),
    (
        "rows.csv",
        lambda f: f,
        ["data.split_column=null", "data.val_fraction=0"],
        "table: expected val_fraction > 0.0 and val_fraction < 1.0, got 0",
    ),
]


@pytest.mark.parametrize(
    ("file", "change", "overrides", "message"),
    TABLE_ROWS,
    ids=[message.split(": ")[-1][:40] for *_, message in TABLE_ROWS],
)
def test_bad_table_is_one_line_before_training(
    make_cfg, tmp_path: Path, file: str, change, overrides: list[str], message: str
):
    path = tmp_path / "data" / file
    path.parent.mkdir()
    if isinstance(change, str):
        path.write_text(change)
    elif change is not None:
        change(_table_rows()).to_csv(path, index=False)
    with pytest.raises(Exception) as error:
        train(make_cfg("data=table", f"data.path={path}", *overrides))
    line = one_line(error.value)
    assert line is not None and "\n" not in line
    assert line.startswith(message.format(path=path)), line
    assert not list(tmp_path.glob("events.out.tfevents.*")), "training started"


def test_missing_and_corrupt_mnist(make_cfg, tmp_path: Path):
    from idx_fixture import write_fake_idx

    with pytest.raises(Exception) as error:
        train(make_cfg("data=mnist", f"data.data_dir={tmp_path / 'empty'}", "data.download=false"))
    line = one_line(error.value)
    assert line.startswith(f"mnist: no MNIST IDX files in {tmp_path / 'empty'}") and line.endswith(
        "download=false"
    )
    corrupt = tmp_path / "corrupt"
    write_fake_idx(corrupt)
    labels = corrupt / "train-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x04\xd2" + labels.read_bytes()[4:])
    with pytest.raises(Exception) as error:
        train(make_cfg("data=mnist", f"data.data_dir={corrupt}", "data.download=false"))
    assert one_line(error.value).startswith(f"mnist: {labels} has magic number 1234, expected 2049")


def test_resume_without_a_checkpoint(make_cfg, tmp_path: Path):
    with pytest.raises(Exception) as error:
        make_cfg(f"resume={tmp_path / 'nowhere'}").ckpt_path  # noqa: B018  (resolving raises)
    assert (
        f"resume: no checkpoint to resume from at {tmp_path / 'nowhere'}/checkpoints/last.ckpt"
        in one_line(error.value)
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["loss=no_such"], "unknown loss 'no_such'; choose one of: "),
        (
            ["data=cifar"],
            "unknown data 'cifar'; choose one of: box_csv, boxes, clean_folder, fashion_mnist, "
            "image_folder, mask_folder, mnist,",
        ),
        (
            ["model=resnet"],
            "unknown model 'resnet'; choose one of: box_cnn, cnn, denoise_unet, embed_cnn, mlp,",
        ),
        (["-m", "optimizer=adamw,lion"], "unknown optimizer 'lion'; choose one of: adamw, sgd"),
    ],
)
def test_unknown_choices_list_what_exists(args: list[str], message: str):
    assert unknown_choice(args).startswith(message)


@pytest.mark.parametrize(
    ("loss", "inputs", "target", "message"),
    [
        (
            "bce",
            torch.zeros(2, 1, 4, 4),
            torch.zeros(2, 1, 4, 4, dtype=torch.long),
            "bce: expected target as a float mask",
        ),
        (
            "bce",
            torch.zeros(2, 1, 4, 4),
            torch.zeros(2, 1, 4, 3),
            "bce: expected target of the same shape",
        ),
        (
            "dice",
            torch.zeros(2, 1, 4, 4),
            torch.full((2, 1, 4, 4), 2.0),
            "dice: expected target values in [0, 1]",
        ),
    ],
)
def test_wrong_tensors_reaching_a_loss(loss: str, inputs, target, message: str):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    loss_fn = instantiate(OmegaConf.load(ROOT / "conf" / "loss" / f"{loss}.yaml"))
    with pytest.raises((TypeError, ValueError)) as error:
        loss_fn(inputs, target)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.slow
def test_cli_prints_one_line_and_fails(tmp_path: Path):
    args = [
        "loss=dice",
        "loss.eps=-1",
        *tiny_budget("seg_imbalanced"),  # the loss fails after the data is built: keep it small
        f"hydra.run.dir={tmp_path}",
    ]
    result = run_train(*args)
    assert result.returncode == 1
    assert result.stderr.strip() == "train.py: dice: expected eps > 0.0, got -1"
    full = run_train(*args, env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr


def test_unwritable_output_directory(tmp_path: Path):
    from trainer.cli import unwritable_output

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert unwritable_output([f"hydra.run.dir={blocker}/run"]).startswith(
        f"cannot create the output directory {blocker}/run:"
    )
    assert unwritable_output([f"hydra.sweep.dir={tmp_path / 'fine'}"]) is None
    assert (
        unwritable_output(["paths.log_dir=/proc/no/such"])
        == "cannot create the output directory /proc/no/such: FileNotFoundError"
    )


def mnist_experiment(cfg, loss=None) -> tuple[LossExperiment, object]:
    """The module and datamodule ``train`` builds from ``cfg``, with ``loss`` instead of the
    config's if given."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup()
    model = instantiate_with_data(cfg.model, datamodule.model_inputs)
    loss = loss or instantiate_with_data(cfg.loss, datamodule.data_stats)
    module = LossExperiment(model, loss, build_task(datamodule), instantiate(cfg.optimizer))
    return module, datamodule


def test_preflight_checks_the_first_training_batch(make_cfg):
    module, datamodule = mnist_experiment(make_cfg("data=mnist", "loss=ce"))
    # one class index out of range, in the first training batch only (validation is clean)
    first_batch = next(iter(datamodule.train_dataloader().batch_sampler))
    targets = datamodule.splits["train"].targets
    targets[first_batch[0]] = 10
    lowest = int(targets[first_batch].min())
    with pytest.raises(ValueError) as error:
        preflight(module, datamodule)
    assert one_line(error.value) == (
        f"ce: expected class indices in [0, 10), got values in [{lowest}, 10]"
    )


class RecordsValueChecks(CrossEntropy):
    """CE that records, per call, whether value checks would run on an accelerator tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.checked_off_cpu: list[bool] = []

    def compute(self, input, target):
        self.checked_off_cpu.append(values_checkable(target.to("meta")))
        return super().compute(input, target)


def test_preflight_runs_the_value_checks_on_any_device(make_cfg):
    loss = RecordsValueChecks()
    module, datamodule = mnist_experiment(make_cfg("data=mnist", "loss=ce"), loss)
    preflight(module, datamodule)
    # the first training batch, then two validation samples, both inside value_checks()
    assert loss.checked_off_cpu == [True, True]
    assert not values_checkable(torch.zeros(1, device="meta"))  # and off again afterwards
    assert module.training


def write_pngs(folder: Path, count: int, size: tuple[int, int] = (16, 16)) -> list[Path]:
    """``count`` random grayscale PNGs of ``size`` (width, height) in ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    paths = [folder / f"{i:03d}.png" for i in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8)).save(path)
    return paths


def classes_root(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        write_pngs(root / name, count)
    return root


def truncated(root: Path) -> Path:
    path = classes_root(root, {"a": 20, "b": 20}) / "b" / "007.png"
    path.write_bytes(path.read_bytes()[:60])
    return path


def mixed_sizes(root: Path) -> Path:
    classes_root(root, {"a": 20})
    return write_pngs(root / "b", 20, (12, 12))[0]


def exported(data: str, damage: Callable[[Path], object]) -> Callable[[Path], None]:
    """A writer: the tiny export of file data config ``data`` (``tests/file_data.py``) copied to
    the root, then ``damage``d."""

    def write(root: Path) -> None:
        shutil.copytree(file_data.root(data), root)
        damage(root)

    return write


def csv_row(root: Path, split: str, line: int, row: str) -> None:
    """Line ``line`` (the header is 1) of ``root/<split>/boxes.csv`` replaced by ``row``."""
    path = root / split / "boxes.csv"
    lines = path.read_text().splitlines()
    lines[line - 1] = row
    path.write_text("\n".join(lines) + "\n")


def mask(path: Path, values: list[int], size: int = 32) -> None:
    """A mask of ``size`` px at ``path`` holding ``values`` (one row each, the rest 0)."""
    pixels = np.zeros((size, size), dtype=np.uint8)
    pixels[: len(values)] = np.asarray(values, dtype=np.uint8)[:, None]
    Image.fromarray(pixels).save(path)


# data config, what to write under the root (returns a path the message names), overrides,
# the message (a substring of the one line; {root} and {path} filled in)
FILE_ROWS = [
    ("image_folder", None, [], "image_folder: {root} does not exist"),
    ("image_folder", lambda r: r.mkdir(), [], "image_folder: {root} holds no class folders"),
    (
        "image_folder",
        lambda r: classes_root(r, {"a": 20, "b": 0}),
        [],
        "image_folder: {root}/b holds no images (expected .png, .jpg, .jpeg,",
    ),
    ("image_folder", truncated, [], "image_folder: cannot read {path}: "),
    (
        "image_folder",
        mixed_sizes,
        [],
        "image_folder: {root}/a/000.png is 16x16 but {path} is 12x12; set data.image_size",
    ),
    (
        "image_folder",
        lambda r: classes_root(r, {"a": 20, "b": 2}),
        [],
        "image_folder: class {root}/b has 2 images, too few to split into train, val and test",
    ),
    (
        "image_folder",
        lambda r: classes_root(r, {"a": 20, "b": 20}),
        ["data.batch_size=64"],
        "image_folder: the training split of {root} holds 32 images, fewer than one batch "
        "(data.batch_size=64)",
    ),
    (
        "image_folder",
        lambda r: classes_root(r, {"a": 20, "b": 20}),
        ["data.classes=[a,c]"],
        "image_folder: data.classes names 'c', but {root}/c does not exist",
    ),
    (
        "image_folder",
        lambda r: classes_root(r, {"a": 20, "b": 20}),
        ["data.channels=2"],
        "image_folder: expected data.channels 1 (grayscale) or 3 (RGB), got 2",
    ),
    (
        "image_folder",
        lambda r: classes_root(r / "train", {"a": 20, "b": 20}),
        [],
        "image_folder: {root}/test does not exist (a root with train/ needs test/)",
    ),
    (
        "retrieval_folder",
        lambda r: classes_root(r, {"a": 4, "b": 4, "c": 4}),
        [],
        "retrieval_folder: 3 classes cannot give 2 held-out classes (data.test_classes=0.5)",
    ),
    (
        "mask_folder",
        exported("mask_folder", lambda r: (r / "train/images/03.png").unlink()),
        [],
        "mask_folder: the mask {root}/train/masks/03.png has no image in {root}/train/images",
    ),
    (
        "mask_folder",
        exported("mask_folder", lambda r: (r / "val/masks/00.png").unlink()),
        [],
        "mask_folder: the image {root}/val/images/00.png has no mask in {root}/val/masks",
    ),
    (
        "mask_folder",
        exported("mask_folder", lambda r: mask(r / "train/masks/05.png", [0], size=16)),
        [],
        "mask_folder: the mask {root}/train/masks/05.png is 16x16 but its image "
        "{root}/train/images/05.png is 32x32",
    ),
    (
        "mask_folder",
        exported("mask_folder", lambda r: mask(r / "test/masks/02.png", [0, 7, 255])),
        [],
        "mask_folder: the mask {root}/test/masks/02.png holds the values 0, 7, 255; expected a "
        "binary mask (0/255 or 0/1), or set data.mask_threshold",
    ),
    (
        "mask_folder",
        exported("mask_folder", lambda r: shutil.rmtree(r / "test/images")),
        [],
        "mask_folder: {root}/test/images does not exist; expected images/ and masks/",
    ),
    (
        "box_csv",
        exported("box_csv", lambda r: csv_row(r, "val", 3, "01.png,4,4,40,8")),
        [],
        "box_csv: {root}/val/boxes.csv line 3: the box (x1 4, y1 4, x2 40, y2 8) lies outside "
        "its 32x32 image {root}/val/01.png",
    ),
    (
        "box_csv",
        exported("box_csv", lambda r: csv_row(r, "train", 2, "missing.png,1,1,5,5")),
        [],
        "box_csv: {root}/train/boxes.csv line 2: the image {root}/train/missing.png does not exist",
    ),
    (
        "box_csv",
        exported("box_csv", lambda r: csv_row(r, "test", 5, "03.png,9,1,9,5")),
        [],
        "box_csv: {root}/test/boxes.csv line 5: the box (x1 9, y1 1, x2 9, y2 5) is empty or "
        "inverted; expected x2 > x1 and y2 > y1",
    ),
    (
        "clean_folder",
        exported("clean_folder", lambda r: shutil.rmtree(r / "train/clean")),
        [],
        "clean_folder: {root}/train/degraded has no clean/ beside it; fixed pairs need both",
    ),
]


@pytest.mark.parametrize(
    ("data", "write", "overrides", "message"),
    FILE_ROWS,
    ids=[f"{row[0]}: {row[3].split(': ', 1)[1][:40]}" for row in FILE_ROWS],
)
def test_bad_files_are_one_line_before_training(
    make_cfg, tmp_path: Path, data, write, overrides, message
):
    root = tmp_path / "data"
    path = write(root) if write else None
    cfg = make_cfg(
        f"data={data}", f"data.root={root}", f"data.cache_dir={tmp_path}/cache", *overrides
    )
    with pytest.raises(Exception) as error:
        train(cfg)
    line = one_line(error.value)
    assert line is not None and "\n" not in line
    assert message.format(root=root, path=path) in line
    assert not list(tmp_path.glob("events.out.tfevents.*")), "training started"


def test_a_data_root_left_out_is_one_line(make_cfg):
    with pytest.raises(Exception) as error:
        train(make_cfg("data=image_folder", "data.root=???"))
    assert one_line(error.value) == "data.root is required: add data.root=... to the command line"


@pytest.mark.slow
def test_cli_names_a_missing_data_root(tmp_path: Path):
    result = run_train(
        "data=image_folder", f"data.root={tmp_path / 'none'}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"train.py: image_folder: {tmp_path / 'none'} does not exist"
