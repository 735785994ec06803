"""The suite sweeper in-process: how it expands command lines, suites, choice and glob sweeps and
dry runs, and how it hands batches to the launcher, without training anything."""

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import ConfigCompositionException
from hydra.types import HydraContext
from omegaconf import DictConfig

import train  # noqa: F401  (registers the config's resolvers)
from hydra_plugins.losscmp.config import SearchConf
from hydra_plugins.losscmp.suite_sweeper import SuiteSweeper, cartesian_jobs
from trainer.cli import hydra_arguments

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class RecordingLauncher:
    """Stands in for the launcher: records the batches it is handed, runs nothing."""

    def __init__(self, composes_every_job_first: bool = False) -> None:
        self.batches: list[list[list[str]]] = []
        self.composes_every_job_first = composes_every_job_first

    def launch(self, batch, initial_job_idx: int) -> list:
        self.batches.append([list(job) for job in batch])
        return []


@pytest.fixture
def make_sweeper(tmp_path: Path) -> Callable[..., tuple[SuiteSweeper, DictConfig, HydraContext]]:
    """``make_sweeper("suite=boxes")``: the configured sweeper, set up the way Hydra sets it up for
    ``-m`` with these (non-sweep) overrides, its launcher replaced by a recorder."""

    def _make(*overrides: str, keep_launcher: bool = False):
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
        if not keep_launcher:
            sweeper.launcher = RecordingLauncher()
        return sweeper, cfg, context

    yield _make
    GlobalHydra.instance().clear()


def jobs_of(sweeper: SuiteSweeper, *arguments: str) -> list[list[str]]:
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    return sweeper.jobs(parser.parse_overrides(list(arguments)))


def class_name(obj: object) -> str:
    # Hydra's plugin discovery executes the plugin modules anew: compare classes by name
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


# --- the cartesian product, as Hydra's basic sweeper makes it ---------------------------------


def test_cartesian_jobs_enumerate_every_sweep_with_the_last_key_fastest():
    parse = OverridesParser.create().parse_overrides
    # the example of Hydra's basic sweeper: a=1,2,3 b=10,20 gives six jobs in this order
    assert cartesian_jobs(parse(["a=1,2,3", "b=10,20"])) == [
        ["a=1", "b=10"],
        ["a=1", "b=20"],
        ["a=2", "b=10"],
        ["a=2", "b=20"],
        ["a=3", "b=10"],
        ["a=3", "b=20"],
    ]
    assert cartesian_jobs(parse(["a=range(1,4)", "b=10,20"])) == cartesian_jobs(
        parse(["a=1,2,3", "b=10,20"])
    )
    # a deletion stays a deletion (not ~d=null), a quoted value quoted
    assert cartesian_jobs(parse(["a=choice(x,y)", "+c=1", "~d", "~f=2", "e='p,q'"])) == [
        ["a=x", "+c=1", "~d", "~f=2", "e='p,q'"],
        ["a=y", "+c=1", "~d", "~f=2", "e='p,q'"],
    ]
    # a key given twice: its first place, its last value
    assert cartesian_jobs(parse(["a=1", "b=2", "a=3,4"])) == [["a=3", "b=2"], ["a=4", "b=2"]]
    assert cartesian_jobs([]) == [[]]


def test_an_interval_is_refused_with_its_key():
    overrides = OverridesParser.create().parse_overrides(["lr=interval(0.1,1)"])
    with pytest.raises(ValueError, match="lr: the suite sweeper enumerates"):
        cartesian_jobs(overrides)


def test_hydra_sets_the_sweeper_up_with_the_configured_launcher(make_sweeper):
    for launcher, expected in (("basic", "BasicLauncher"), ("lockstep", "LockstepLauncher")):
        sweeper, cfg, context = make_sweeper(f"hydra/launcher={launcher}", keep_launcher=True)
        assert class_name(sweeper) == f"{SuiteSweeper.__module__}.{SuiteSweeper.__qualname__}"
        assert sweeper.config is cfg and sweeper.hydra_context is context
        assert type(sweeper.launcher).__name__ == expected


def test_a_suite_sweep_launches_each_variant(make_sweeper):
    sweeper, _, _ = make_sweeper("suite=boxes", "seed=0")
    sweeper.sweep(["suite=boxes", "seed=0"])
    launched = [job[0] for batch in sweeper.launcher.batches for job in batch]
    assert launched == ["loss=giou", "loss=l1", "loss=smooth_l1", "loss=giou_l1"]


def test_batches_hold_at_most_max_batch_size_jobs(make_sweeper):
    sweeper, _, _ = make_sweeper("hydra.sweeper.max_batch_size=3")
    sweeper.sweep(["loss=focal", "loss.gamma=0,1,2,5"])
    gammas = [[job[1] for job in batch] for batch in sweeper.launcher.batches]
    assert gammas == [["loss.gamma=0", "loss.gamma=1", "loss.gamma=2"], ["loss.gamma=5"]]


def test_jobs_are_composed_before_launch_unless_the_launcher_does_it(make_sweeper):
    sweeper, _, _ = make_sweeper()
    with pytest.raises(ConfigCompositionException):  # Hydra's early check
        sweeper.sweep(["loss=focal", "loss.no_such_key=1,2"])
    assert sweeper.launcher.batches == []
    sweeper, _, _ = make_sweeper()
    sweeper.launcher = RecordingLauncher(composes_every_job_first=True)
    sweeper.sweep(["loss=focal", "loss.no_such_key=1,2"])
    assert len(sweeper.launcher.batches[0]) == 2  # left to the launcher


# --- what the sweeper makes of a command line -------------------------------------------------


def test_choice_and_simple_sweeps_of_a_group_expand_like_hydra(make_sweeper):
    sweeper, _, _ = make_sweeper("debug=quick")
    assert jobs_of(sweeper, "loss=choice(bce,dice)", "debug=quick") == [
        ["loss=bce", "debug=quick"],
        ["loss=dice", "debug=quick"],
    ]
    # a named misfit (ce on segmentation) is not skipped: it fails as its own job, with its line
    assert jobs_of(sweeper, "loss=ce,dice") == [["loss=ce"], ["loss=dice"]]


def test_a_data_glob_keeps_the_data_the_loss_fits(make_sweeper, caplog):
    sweeper, _, _ = make_sweeper("loss=giou")
    with caplog.at_level(logging.INFO, logger="hydra_plugins.losscmp.suite_sweeper"):
        jobs = jobs_of(sweeper, "data=glob(*)", "loss=giou")
    # box_csv fits giou's task too, but reads the user's files: without data.root it cannot run
    assert jobs == [["data=boxes", "loss=giou"]]
    assert "skipped data=box_csv: it requires data.root" in caplog.messages
    with_root = jobs_of(sweeper, "data=glob(box_*)", "loss=giou", "data.root=/somewhere")
    assert with_root == [["data=box_csv", "loss=giou", "data.root=/somewhere"]]


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
    sweeper, _, _ = make_sweeper(
        "hydra.sweeper.dry_run=true"
    )  # what train.py makes of dry_run=true
    assert sweeper.sweep(["loss=focal", "loss.gamma=0,2"]) == []
    assert capsys.readouterr().out.splitlines() == [
        "loss=focal loss.gamma=0",
        "loss=focal loss.gamma=2",
        "2 jobs (dry run: nothing trained)",
    ]
    assert sweeper.launcher.batches == []
    assert not (tmp_path / "sweep").exists()


def test_the_sweep_settings_are_the_sweepers_and_no_job_carries_them(make_sweeper):
    # dry_run=true, tune=true and search.* reach the sweeper (its structured config), not the jobs
    arguments = hydra_arguments(["-m", "dry_run=true", "tune=true", "search.n_trials=20"])
    assert arguments == [
        "-m",
        "hydra.sweeper.dry_run=true",
        "hydra.sweeper.tune=true",
        "hydra.sweeper.search.n_trials=20",
    ]
    sweeper, cfg, _ = make_sweeper(*arguments[1:])
    assert (sweeper.is_dry_run, sweeper.tune, sweeper.search_settings.n_trials) == (True, True, 20)
    assert sweeper.search_settings.trial_seed == SearchConf().trial_seed
    assert not {"dry_run", "tune", "search"} & set(cfg)  # the job config has none of them
    assert list(cfg.hydra.overrides.task) == []
    with pytest.raises(ConfigCompositionException, match="search"):  # nor could a job take one
        make_sweeper("search.n_trials=3")


def test_the_sweepers_settings_are_checked_by_their_declared_types(make_sweeper):
    with pytest.raises(ConfigCompositionException, match="n_trials"):
        make_sweeper("hydra.sweeper.search.n_trials=many")


def test_search_parallel_below_one_is_refused_in_one_line(make_sweeper):
    with pytest.raises(Exception) as raised:
        make_sweeper("hydra.sweeper.search.parallel=0")
    cause = raised.value
    while cause.__cause__ is not None:  # Hydra wraps what the sweeper's constructor raised
        cause = cause.__cause__
    assert isinstance(cause, ValueError)
    assert str(cause) == "suite sweeper: expected search.parallel >= 1, got 0"


def test_tune_refuses_a_suites_selected_key_outside_a_variants_space(make_sweeper):
    # a key every space holds (the suites' optimizer.lr) is searched instead: test_tuning's tuned
    # suite; one that no space holds would be chosen a second time, on the suite's first seed
    sweeper, _, _ = make_sweeper(
        "suite=restoration",
        "suite.select=[data.batch_size]",
        "hydra.sweeper.tune=true",
        "hydra.sweeper.dry_run=true",
    )
    with pytest.raises(ValueError) as raised:
        sweeper.sweep(["suite=restoration"])
    (line,) = str(raised.value).splitlines()
    assert line.startswith(
        "tune=true searches each variant's space; suite=restoration's select: [data.batch_size] "
        "is not in the space of ["
    )
    assert line.endswith("so it would be chosen again on the suite's first seed: drop one of them")
