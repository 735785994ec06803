"""The shipped logger configs, alone and together, and a logger that fails: the run's results and
``status.json`` never depend on a logger."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from conftest import read_events
from lightning.pytorch.loggers import Logger

from train import train
from trainer.cli import one_line
from trainer.config import ConfigError
from trainer.records import build_loggers


def read_status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_tensorboard_and_csv_together(make_cfg, tmp_path: Path):
    metrics = train(make_cfg("logger=many", "loss=focal"))
    events = read_events(tmp_path)
    assert events["hparams"]["loss"] == "focal"
    assert events["scalars"]["test/dice"][0][1] == pytest.approx(metrics["test/dice"], rel=1e-6)
    rows = csv_rows(tmp_path / "csv" / "metrics.csv")
    test_dice = [float(row["test/dice"]) for row in rows if row["test/dice"]]
    # once from the test loop, once in the final record at the end
    assert test_dice == pytest.approx([metrics["test/dice"]] * 2, rel=1e-6)
    assert "loss: focal" in (tmp_path / "csv" / "hparams.yaml").read_text()
    status = read_status(tmp_path)
    assert status["status"] == "completed"
    assert "warnings" not in status


def test_csv_alone(make_cfg, tmp_path: Path):
    metrics = train(make_cfg("logger=csv"))
    assert not list(tmp_path.glob("events.out.tfevents.*"))
    rows = csv_rows(tmp_path / "csv" / "metrics.csv")
    assert [float(r["test/dice"]) for r in rows if r["test/dice"]][-1] == pytest.approx(
        metrics["test/dice"], rel=1e-6
    )
    assert read_status(tmp_path)["metrics"] == pytest.approx(metrics)


class BrokenLogger(Logger):
    """Stores nothing; fails where loggers fail in practice: the start and the end."""

    name = "broken"
    version = "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        raise ConnectionError("tracking server unreachable")

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def finalize(self, status: str) -> None:
        raise ConnectionError("upload failed")


def test_failing_logger_leaves_a_completed_run_completed(make_cfg, tmp_path: Path):
    metrics = train(make_cfg(f"+logger.broken={{_target_:{__name__}.BrokenLogger}}"))
    status = read_status(tmp_path)
    assert status["status"] == "completed"
    assert status["metrics"] == pytest.approx(metrics)
    assert "test/dice" in metrics
    assert status["warnings"] == [
        "BrokenLogger.log_hyperparams: ConnectionError: tracking server unreachable",
        # Lightning finalizes its loggers at the end of fit and of test
        "BrokenLogger.finalize('success'): ConnectionError: upload failed",
        "BrokenLogger.finalize('success'): ConnectionError: upload failed",
    ]
    # the other logger got everything
    assert read_events(tmp_path)["hparams"]["loss"] == "bce"


def test_missing_optional_package_is_one_line(make_cfg, monkeypatch):
    cfg = make_cfg("logger=mlflow")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlflow" else find_spec(name, *a),
    )
    with pytest.raises(ConfigError) as error:
        build_loggers(cfg.logger, warn=lambda message: None)
    assert one_line(error.value) == (
        "logger=mlflow needs the mlflow package: .venv/bin/pip install mlflow"
    )


def test_mlflow_store_in_the_run_dir(make_cfg, tmp_path: Path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    metrics = train(make_cfg("logger=mlflow", "loss=focal", "loss.gamma=1"))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (experiment,) = client.search_experiments(filter_string="name = 'seg_imbalanced'")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["loss"] == "focal"
    assert run.data.params["loss.gamma"] == "1"
    assert "seed" not in run.data.params
    assert run.data.metrics["test/dice"] == pytest.approx(metrics["test/dice"], rel=1e-6)
    assert read_status(tmp_path)["status"] == "completed"


def test_wandb_offline(make_cfg, tmp_path: Path):
    pytest.importorskip("wandb")
    metrics = train(make_cfg("logger=wandb"))
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    assert read_status(tmp_path)["metrics"] == pytest.approx(metrics)
