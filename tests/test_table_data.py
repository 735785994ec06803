"""``data=table``: the built-in regression data exported to CSV load back tensor for tensor and
train to the same metrics; Parquet loads as CSV does; standardisation takes the training split's
statistics only; the seeded split and the feature choice; pandas is imported only to read."""

import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from datasets._base import SPLITS, TensorBatches
from datasets.files import split_indices
from datasets.regression import RegressionDataModule
from datasets.table import TableDataModule, export_regression
from train import train

ROOT = Path(__file__).resolve().parent.parent


def exported(tmp_path: Path, **sizes) -> tuple[RegressionDataModule, Path]:
    """A small built-in regression datamodule and its export."""
    builtin = RegressionDataModule(**sizes)
    return builtin, export_regression(builtin, tmp_path / "export", limit=None)


def loaded(path: Path, **options) -> TableDataModule:
    options = {"target": "y", "split_column": "split", "batch_size": 8, **options}
    table = TableDataModule(str(path), **options)
    table.setup()
    return table


def test_the_export_loads_back_to_the_builtin_tensors(tmp_path: Path):
    builtin, path = exported(tmp_path, n_train=200, n_val=50, n_test=40, n_features=10, seed=3)
    assert path == tmp_path / "export" / "regression.csv"
    header = path.read_text().splitlines()[0]
    assert header == ",".join([*(f"x{i}" for i in range(1, 11)), "y", "split"])
    table = loaded(path, standardize=False)
    builtin.setup()
    for split in SPLITS:
        ours, theirs = table.splits[split], builtin.splits[split]
        assert ours.inputs.dtype == ours.targets.dtype == torch.float32
        assert torch.equal(ours.inputs, theirs.inputs), split
        assert torch.equal(ours.targets, theirs.targets), split
    assert table.data_stats == builtin.data_stats
    assert table.model_inputs == builtin.model_inputs
    assert builtin.model_inputs == {"in_shape": [10], "num_outputs": 1, "task": "regression"}
    assert table.feature_names == [f"x{i}" for i in range(1, 11)]


def test_the_export_script_writes_the_first_rows_of_each_split(tmp_path: Path, capsys):
    script = runpy.run_path(str(ROOT / "scripts" / "export_data.py"), run_name="export_data")
    sizes = ["data.n_train=30", "data.n_val=20", "data.n_test=10", "data.n_features=9"]
    out = tmp_path / "out"
    assert script["main"](["data=regression", *sizes, "--out", str(out), "--limit", "12"]) == 0
    assert "exported data=regression (regression)" in capsys.readouterr().out
    table = loaded(out / "regression.csv", standardize=False)
    builtin = RegressionDataModule(n_train=30, n_val=20, n_test=10, n_features=9)
    builtin.setup()
    assert [len(table.splits[s]) for s in SPLITS] == [12, 12, 10]
    for split in SPLITS:
        assert torch.equal(table.splits[split].inputs, builtin.splits[split].inputs[:12])
        assert torch.equal(table.splits[split].targets, builtin.splits[split].targets[:12])


def test_one_seed_trains_to_the_same_metrics_on_the_export(make_cfg, tmp_path: Path):
    # tiny budgets: data=table reads tests/file_data.py's export of data=regression's tiny data
    runs = {
        data: train(
            make_cfg(f"data={data}", *options, "seed=3", f"paths.output_dir={tmp_path / data}")
        )
        for data, options in (("regression", []), ("table", ["data.standardize=false"]))
    }
    tested = {
        data: {k: v for k, v in m.items() if k.startswith("test/")} for data, m in runs.items()
    }
    assert {"test/mae", "test/rmse", "test/r2", "test/loss"} <= tested["table"].keys()
    assert tested["table"] == tested["regression"]
    standardized = train(make_cfg("data=table", "seed=3", f"paths.output_dir={tmp_path / 's'}"))
    assert standardized["test/mae"] != tested["table"]["test/mae"]  # the inputs did change


class _Rows:
    """A stand-in regression datamodule serving given tensors as all three splits."""

    name = "rows"

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.splits = dict.fromkeys(SPLITS, TensorBatches(inputs, targets))

    def setup(self) -> None:
        pass


def test_every_float32_round_trips_through_the_csv(tmp_path: Path):
    # random bit patterns: every exponent, subnormals, the extremes; non-finite ones dropped
    bits = torch.randint(-(2**31), 2**31 - 1, (20000,), generator=torch.Generator().manual_seed(0))
    values = bits.int().view(torch.float32)
    values = values[values.isfinite()]
    extremes = torch.tensor([0.0, -0.0, 1.4e-45, 3.4028235e38, -3.4028235e38, 1.1754944e-38])
    values = torch.cat([values, extremes])
    inputs = values[: len(values) // 2 * 2].reshape(-1, 2)
    path = export_regression(_Rows(inputs, inputs[:, :1].flip(0)), tmp_path, limit=None)
    table = loaded(path, standardize=False, batch_size=1)
    assert torch.equal(table.splits["test"].inputs, inputs)
    assert torch.equal(table.splits["test"].targets, inputs[:, :1].flip(0))


@pytest.mark.parametrize("split_column", ["split", None])
def test_parquet_loads_to_the_same_tensors_as_the_csv(tmp_path: Path, split_column):
    _, csv = exported(tmp_path, n_train=120, n_val=30, n_test=30)
    parquet = tmp_path / "table.parquet"
    pd.read_csv(csv).to_parquet(parquet)
    options = {"split_column": split_column}
    from_csv, from_parquet = loaded(csv, **options), loaded(parquet, **options)
    for split in SPLITS:
        assert torch.equal(from_csv.splits[split].inputs, from_parquet.splits[split].inputs)
        assert torch.equal(from_csv.splits[split].targets, from_parquet.splits[split].targets)
    assert from_parquet.feature_names == [f"x{i}" for i in range(1, 9)]


def shifted_table(path: Path) -> pd.DataFrame:
    """Rows whose val split is shifted and test split scaled against train, with a constant
    feature: held-out statistics differ from the training ones, so using them shows."""
    g = np.random.default_rng(0)
    n = {"train": 300, "val": 100, "test": 100}
    frames = []
    for split, shift, scale in (("train", 0, 1), ("val", 5, 1), ("test", 0, 4)):
        frames.append(
            pd.DataFrame(
                {
                    "a": (3 * g.standard_normal(n[split]) + 1) * scale + shift,
                    "constant": 7.25,
                    "b": g.uniform(-100, 300, n[split]) + shift,
                    "y": g.standard_normal(n[split]) * 50 + 1000,
                    "split": split,
                }
            )
        )
    pd.concat(frames, ignore_index=True).to_csv(path, index=False, float_format="%.9g")
    return pd.read_csv(path)  # the reference reads what the file holds


def test_standardisation_takes_the_training_statistics_only(tmp_path: Path):
    frame = shifted_table(tmp_path / "shifted.csv")
    table = loaded(tmp_path / "shifted.csv", target="y")
    raw = {s: frame[frame.split == s][["a", "constant", "b"]].to_numpy(np.float32) for s in SPLITS}
    train64 = raw["train"].astype(np.float64)
    mean, std = train64.mean(axis=0), train64.std(axis=0)  # population std (ddof 0)
    std[1] = 1.0  # the constant feature: centred only
    train = table.splits["train"].inputs.double().numpy()
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(train.std(axis=0)[[0, 2]], 1.0, atol=1e-6)
    assert (train[:, 1] == 0).all()
    for split in ("val", "test"):
        expected = (raw[split].astype(np.float64) - mean) / std
        np.testing.assert_allclose(table.splits[split].inputs.numpy(), expected, atol=1e-6)
    # val's own statistics would centre it: with the training ones its shift (5) stays
    assert table.splits["val"].inputs[:, 0].mean() > 1.0
    assert (table.splits["val"].inputs[:, 1] == 0).all()
    torch.testing.assert_close(table.feature_mean, torch.from_numpy(mean), rtol=1e-12, atol=0)
    # targets are left in their units
    y = torch.tensor(frame[frame.split == "val"][["y"]].to_numpy(np.float32))
    assert torch.equal(table.splits["val"].targets, y)
    assert table.data_stats["target_mean"] == pytest.approx(
        float(frame[frame.split == "train"].y.astype(np.float32).astype(np.float64).mean())
    )


def test_the_seeded_split_and_the_feature_columns(tmp_path: Path):
    n = 200
    frame = pd.DataFrame(
        {
            "row": np.arange(n, dtype=float),
            "city": ["paris", "oslo"] * (n // 2),
            "flag": np.arange(n) % 3 == 0,
            "target": np.arange(n) * 10.0,
            "size": np.arange(n) % 7,
        }
    )
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    options = {"target": "target", "split_column": None, "standardize": False}
    options |= {"val_fraction": 0.2, "test_fraction": 0.1, "split_seed": 5}
    table = loaded(path, **options)
    assert table.feature_names == ["row", "flag", "size"]  # file order, 'city' left out
    rows = {s: table.splits[s].inputs[:, 0].long() for s in SPLITS}
    expected = split_indices(n, 0.2, 0.1, 5, "table")
    for split, index in zip(SPLITS, expected, strict=True):
        assert torch.equal(rows[split], index), split
        assert torch.equal(table.splits[split].targets[:, 0], index.float() * 10)
    assert sorted(torch.cat(list(rows.values())).tolist()) == list(range(n))
    other = loaded(path, **{**options, "split_seed": 6})
    assert not torch.equal(other.splits["val"].inputs[:, 0].long(), rows["val"])
    chosen = loaded(path, **options, features=["size", "row"])
    assert chosen.feature_names == ["size", "row"] and chosen.in_shape == [2]
    assert torch.equal(chosen.splits["train"].inputs[:, 1].long(), rows["train"])
