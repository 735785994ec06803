"""The suite sweeper in-process: what it takes from Hydra's internal ``BasicSweeper`` (pinned, so a
Hydra upgrade that changes it fails here with a message saying what changed), and how it expands
suites, choice and glob sweeps and dry runs, without launching anything."""

import inspect
import logging
from collections.abc import Callable
from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.types import HydraContext
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

import train  # noqa: F401  (registers the config's resolvers)
from hydra_plugins.losscmp.suite_sweeper import SuiteSweeper

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
UPGRADE = f"Hydra {hydra.__version__} changed BasicSweeper, which SuiteSweeper subclasses:"


class RecordingLauncher:
    """Stands in for the launcher: records the batches it is handed, runs nothing."""

    def __init__(self) -> None:
        self.batches: list[list[list[str]]] = []

    def launch(self, batch, initial_job_idx: int) -> list:
        self.batches.append([list(job) for job in batch])
        return []


@pytest.fixture
def make_sweeper(tmp_path: Path) -> Callable[..., tuple[BasicSweeper, DictConfig, HydraContext]]:
    """``make_sweeper("suite=boxes")``: the configured sweeper, set up the way Hydra sets it up for
    ``-m`` with these (non-sweep) overrides, its launcher replaced by a recorder."""

    def _make(*overrides: str) -> tuple[BasicSweeper, DictConfig, HydraContext]:
        GlobalHydra.instance().clear()
        initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR))
        cfg = compose(
            "train",
            overrides=[*overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
            return_hydra_config=True,
        )
        context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=None)
        sweeper = Plugins.instance().instantiate_sweeper(
            hydra_context=context, task_function=lambda _: None, config=cfg
        )
        sweeper.launcher = RecordingLauncher()
        return sweeper, cfg, context

    yield _make
    GlobalHydra.instance().clear()


def jobs_of(sweeper: BasicSweeper, *arguments: str) -> list[list[str]]:
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    batches = sweeper.split_arguments(parser.parse_overrides(list(arguments)), None)
    return [job for batch in batches for job in batch]


# --- what SuiteSweeper relies on in Hydra's BasicSweeper --------------------------------------


def test_split_arguments_is_a_static_method_of_overrides_and_max_batch_size():
    assert isinstance(inspect.getattr_static(BasicSweeper, "split_arguments"), staticmethod), (
        f"{UPGRADE} split_arguments is no longer a static method; SuiteSweeper.grid calls "
        "BasicSweeper.split_arguments(overrides, None) unbound"
    )
    parameters = list(inspect.signature(BasicSweeper.split_arguments).parameters)
    assert parameters == ["overrides", "max_batch_size"], (
        f"{UPGRADE} split_arguments takes {parameters}, not (overrides, max_batch_size)"
    )
    overrides = OverridesParser.create().parse_overrides(["a=1,2", "b=x"])
    batches = BasicSweeper.split_arguments(overrides, None)
    assert batches == [[["a=1", "b=x"], ["a=2", "b=x"]]], (
        f"{UPGRADE} split_arguments(overrides, None) returned {batches}, not one batch of "
        "override-string lists"
    )
    batches = BasicSweeper.split_arguments(overrides, 1)
    assert batches == [[["a=1", "b=x"]], [["a=2", "b=x"]]], (
        f"{UPGRADE} split_arguments(overrides, 1) returned {batches}, not batches of one job"
    )


def test_the_constructor_and_setup_give_config_and_hydra_context(make_sweeper):
    parameters = list(inspect.signature(BasicSweeper.__init__).parameters)
    assert parameters[:3] == ["self", "max_batch_size", "params"], (
        f"{UPGRADE} __init__ takes {parameters}; conf/hydra/sweeper/suite.yaml passes "
        "max_batch_size and params"
    )
    setup = inspect.signature(BasicSweeper.setup).parameters
    assert {"hydra_context", "task_function", "config"} <= setup.keys(), (
        f"{UPGRADE} setup takes {list(setup)}, not hydra_context, task_function, config"
    )
    sweeper, cfg, context = make_sweeper()
    # Hydra's plugin discovery imports the module anew: compare the class by its name
    name = f"{type(sweeper).__module__}.{type(sweeper).__qualname__}"
    assert name == f"{SuiteSweeper.__module__}.{SuiteSweeper.__qualname__}", name
    assert getattr(sweeper, "config", None) is cfg, (
        f"{UPGRADE} setup no longer stores the config as self.config"
    )
    assert getattr(sweeper, "hydra_context", None) is context, (
        f"{UPGRADE} setup no longer stores the context as self.hydra_context"
    )


def test_sweep_expands_through_the_subclass_split_arguments(make_sweeper):
    parameters = list(inspect.signature(BasicSweeper.sweep).parameters)
    assert parameters == ["self", "arguments"], (
        f"{UPGRADE} sweep takes {parameters}; SuiteSweeper.sweep takes (self, arguments)"
    )
    sweeper, _, _ = make_sweeper("suite=boxes", "seed=0")
    sweeper.sweep(["suite=boxes", "seed=0"])
    # the suite's four variants, not the basic sweeper's single job
    launched = [job for batch in sweeper.launcher.batches for job in batch]
    assert [job[0] for job in launched] == [
        "loss=giou",
        "loss=l1",
        "loss=smooth_l1",
        "loss=giou_l1",
    ], f"{UPGRADE} sweep() no longer calls self.split_arguments: suites would not expand"


# --- what the sweeper makes of a command line -------------------------------------------------


def test_choice_and_simple_sweeps_of_a_group_expand_like_hydra(make_sweeper):
    sweeper, _, _ = make_sweeper("debug=quick")
    assert jobs_of(sweeper, "loss=choice(bce,dice)", "debug=quick") == [
        ["loss=bce", "debug=quick"],
        ["loss=dice", "debug=quick"],
    ]
    # a named misfit (ce on segmentation) is not skipped: it fails as its own job, with its line
    assert jobs_of(sweeper, "loss=ce,dice") == [["loss=ce"], ["loss=dice"]]


def test_a_loss_glob_keeps_the_losses_that_fit_the_data_and_logs_each_skip(make_sweeper, caplog):
    # the reference: the loss classes' own `tasks`, read here without the sweeper's helpers
    names = sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml"))
    fits = {
        name
        for name in names
        if "regression"
        in get_class(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml")._target_).tasks
    }
    assert {"mse", "l1", "huber", "smooth_l1"} <= fits and "bce" not in fits
    sweeper, _, _ = make_sweeper("data=regression")
    with caplog.at_level(logging.INFO, logger="hydra_plugins.losscmp.suite_sweeper"):
        jobs = jobs_of(sweeper, "loss=glob(*)", "data=regression")
    assert jobs == [[f"loss={name}", "data=regression"] for name in sorted(fits)]
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert skipped == [
        f"skipped loss={name}: it does not fit data=regression (task regression)"
        for name in names
        if name not in fits
    ]


def test_a_data_glob_keeps_the_data_the_loss_fits(make_sweeper):
    sweeper, _, _ = make_sweeper("loss=giou")
    assert jobs_of(sweeper, "data=glob(*)", "loss=giou") == [["data=boxes", "loss=giou"]]


def test_a_suite_expands_each_variant_with_its_seeds_and_the_command_line_wins(make_sweeper):
    sweeper, _, _ = make_sweeper("suite=regression_outliers")
    jobs = jobs_of(sweeper, "suite=regression_outliers")
    # mse, l1, huber x 3 deltas, smooth_l1 x 2 betas: 7 variants, x 3 seeds
    assert len(jobs) == 21
    assert jobs[:3] == [["loss=mse", f"seed={s}", "suite=regression_outliers"] for s in range(3)]
    assert ["loss=huber", "loss.delta=2", "seed=1", "suite=regression_outliers"] in jobs
    jobs = jobs_of(sweeper, "suite=regression_outliers", "seed=7", "trainer.max_epochs=1")
    assert len(jobs) == 7
    assert jobs[0] == ["loss=mse", "suite=regression_outliers", "seed=7", "trainer.max_epochs=1"]


def test_dry_run_prints_each_job_and_the_count_and_launches_nothing(
    make_sweeper, capsys, tmp_path: Path
):
    sweeper, _, _ = make_sweeper("dry_run=true")
    assert sweeper.sweep(["loss=focal", "loss.gamma=0,2", "dry_run=true"]) == []
    assert capsys.readouterr().out.splitlines() == [
        "loss=focal loss.gamma=0",
        "loss=focal loss.gamma=2",
        "2 jobs (dry run: nothing trained)",
    ]
    assert sweeper.launcher.batches == []
    assert not (tmp_path / "sweep").exists()
