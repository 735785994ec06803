"""Hydra compose-API fixtures: configs as ``train.py`` would see them, with tiny budgets.

torch and the task examples (which import the datamodules, hence Lightning) are imported where
they are used: under ``pytest -n N`` the controlling process loads this file too, and runs no
test, so it would spend ~9 s of CPU importing them while the workers start.
"""

import gc
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import train  # noqa: F401  (registers the run_name resolver)

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"

# the trainer's side of the tiny budget (each task's examples give the data and model side)
FAST_TRAINER = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` the workers share the cores: each torch takes its share of them for
    its intra-op threads (1 each on 2 cores and 2 workers), and so does every process a test
    starts (the fork server of ``tests/train_cli.py`` imports torch with this environment, a
    subprocess inherits it); at the default of one thread per core, each worker's threads would
    wait on the others'."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is None:  # not an xdist worker: torch's default, a thread per core
        return
    import torch

    threads = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
    torch.set_num_threads(int(threads))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n N`` the ``slow`` tests come first (in their order), the quick ones
    after: ``--dist loadgroup`` hands the tests out in this order as the workers free up, so the
    quick ones fill the end instead of one worker finishing a long run alone."""
    if hasattr(config, "workerinput"):  # an xdist worker
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the imports and the collection built (half a million objects: torch, Lightning,
    Hydra, the test items) lives until the session ends, yet each full pass of Python's cyclic
    garbage collector walks it again (~0.4 s a pass, some twenty passes a worker): moved out of
    the collector's sight once, after a last collection so no garbage is kept, the passes walk
    only what the tests made (a third less collector time)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def exported_file_data() -> None:
    """The file layouts of ``tests/file_data.py``, exported once (kept between sessions)."""
    import file_data

    file_data.ensure()


@pytest.fixture
def fake_mnist_dir(tmp_path_factory) -> Path:
    from idx_fixture import write_fake_idx

    return write_fake_idx(tmp_path_factory.mktemp("mnist"), n_train=600, n_test=200)


@pytest.fixture
def make_cfg(tmp_path, request) -> Callable[..., DictConfig]:
    """``make_cfg("loss=focal", ...)``: the composed config, run dir in ``tmp_path``, MNIST from
    a fake IDX fixture, tiny data and budget unless ``tiny=False`` (the data and model overrides of
    the task's examples, ``tests/task_examples/``, for the data and model chosen).

    A tiny run draws no task figures unless ``figures=True``: the figures are the task's, whatever
    the loss, and are checked per task (``test_task_figures``) and per lockstep variant; drawing
    them costs half of a tiny classification run."""

    from task_examples import default_data, tiny_budget

    def _make(*overrides: str, tiny: bool = True, figures: bool = False) -> DictConfig:
        def choice(group: str, default: str | None) -> str | None:
            return next(
                (o.split("=", 1)[1] for o in overrides if o.startswith(f"{group}=")), default
            )

        data = choice("data", default_data())
        extra = [*tiny_budget(data, choice("model", None)), *FAST_TRAINER] if tiny else []
        if tiny and not figures:
            extra.append("~callbacks.figures")
        if (
            "mnist" in data
            or "data.source=mnist" in overrides
            or "data.source=fashion_mnist" in overrides
        ):
            extra += [
                f"data.data_dir={request.getfixturevalue('fake_mnist_dir')}",
                "data.download=false",
            ]
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = compose("train", overrides=[*extra, *overrides], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _make
    GlobalHydra.instance().clear()


def read_events(run_dir: Path) -> dict:
    """Scalars (tag -> [(step, value)]), image tags and HParams (names -> values; the
    experiment's columns and metric tags, none without one) of the TensorBoard run in ``run_dir``
    (the HParams entry at the start, fit and test each close and reopen the writer, so a run is a
    few event files, which TensorBoard reads as one run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    hparams, columns, metric_tags = {}, [], []
    for content in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            hparams = {
                k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                for k, v in data.session_start_info.hparams.items()
            }
        if data.HasField("experiment"):
            columns = [h.name for h in data.experiment.hparam_infos]
            metric_tags = [m.name.tag for m in data.experiment.metric_infos]
    return {
        "scalars": scalars,
        "images": acc.Tags()["images"],
        "hparams": hparams,
        "columns": columns,
        "metric_tags": metric_tags,
    }
