"""TensorBoard's HParams tab on a sweep and on a single run, as TensorBoard's own HParams backend
serves it: one experiment per sweep naming every variant's keys (``loss.delta`` and
``loss.beta``), the varying ones only; a single run keeps its own, with its metric columns.

The runs are started through the run protocol's own ``start_records`` (no training): what a run
writes before fit is all the HParams tab reads of it besides the metrics' scalars.
"""

from pathlib import Path

import pytest
from conftest import read_events
from omegaconf import OmegaConf, open_dict
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import (
    api_pb2,
    backend_context,
    get_experiment,
    list_session_groups,
)

import train
from trainer.analysis.callback import CompareOnMultirunEnd
from trainer.hparams_experiment import hparam_infos
from trainer.records import StatusRecord
from trainer.run import start_records

# suite=regression_outliers less l1 (a second loss without parameters would only cost a
# composition): mse, grids of huber's delta and smooth_l1's beta
GRIDS = {
    "mse": [None],
    "huber": ["loss.delta=0.5", "loss.delta=1", "loss.delta=2"],
    "smooth_l1": ["loss.beta=0.5", "loss.beta=1"],
}
VARIANTS = sum(len(grid) for grid in GRIDS.values())
SEEDS = (0, 1)
TAGS = ["val/loss", "val/mae", "test/loss", "test/mae"]


def start_run(cfg, run_dir: Path, overrides: list[str], in_sweep: bool) -> None:
    """What the run of ``cfg`` (composed) writes before fit, into ``run_dir``: ``status.json``
    and its loggers' start (the HParams entry among them); its loggers then close."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    status = StatusRecord.create(run_dir)
    choices = cfg.hydra.runtime.choices
    for logger in start_records(cfg, choices, overrides, TAGS, status, in_sweep):
        logger.finalize("success")


def hparams_tab(logdir: Path) -> tuple[api_pb2.Experiment, list[dict]]:
    """What the HParams tab gets for ``tensorboard --logdir logdir``: the experiment (its request
    asks for up to 1000 hyperparameters) and the session groups, each as its values and its
    number of sessions (``_sessions``)."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider))
    request = api_pb2.GetExperimentRequest(hparams_limit=1000, include_metrics=True)
    experiment = get_experiment.Handler(context.RequestContext(), backend, "", request).run()
    groups_request = api_pb2.ListSessionGroupsRequest(
        col_params=[api_pb2.ColParams(hparam=h.name) for h in experiment.hparam_infos],
        aggregation_type=api_pb2.AGGREGATION_AVG,
        slice_size=100,
        allowed_statuses=api_pb2.Status.values(),  # the tab's default: every status
    )
    response = list_session_groups.Handler(
        context.RequestContext(), backend, "", groups_request
    ).run()
    groups = [
        {k: getattr(v, v.WhichOneof("kind")) for k, v in g.hparams.items()}
        | {"_sessions": len(g.sessions)}
        for g in response.session_groups
    ]
    return experiment, groups


def sweep_of_runs(make_cfg, sweep_dir: Path) -> None:
    """Every variant at two seeds, as a multirun's jobs start, in ``sweep_dir/<variant>-seed=N``.
    A loss is composed once; each point of its grid sets its key on a copy, as Hydra's override
    of that key would (a composition per job would cost the test seconds)."""
    for loss, grid in GRIDS.items():
        composed = make_cfg("data=regression", "model=mlp", f"loss={loss}")
        for override in grid:
            cfg, job = composed.copy(), list(composed.hydra.overrides.task)
            if override:
                key, value = override.split("=")
                OmegaConf.update(cfg, key, float(value))
                job.append(override)
            name = f"{loss}-{override.removeprefix('loss.')}" if override else loss
            for seed in SEEDS:
                start_run(cfg, sweep_dir / f"{name}-seed={seed}", [*job, f"seed={seed}"], True)


def test_a_sweep_has_one_experiment_with_every_variants_keys(make_cfg, tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    sweep_of_runs(make_cfg, sweep_dir)
    # the runs name no columns of their own: TensorBoard would show one run's as every run's
    run_events = read_events(sweep_dir / "huber-delta=0.5-seed=0")
    assert run_events["metric_tags"] == []
    assert run_events["hparams"]["loss.delta"] == 0.5
    # the multirun's end, as a search's (no comparison report: these runs have no results)
    config = {"hydra": {"sweeper": {}, "sweep": {"dir": str(sweep_dir)}}, "hparams_search": "l1"}
    CompareOnMultirunEnd().on_multirun_end(OmegaConf.create(config))

    experiment, groups = hparams_tab(sweep_dir)
    infos = {info.name: info for info in experiment.hparam_infos}
    # what varies, by name; the constants (data, model, loss.reduction, test_ckpt, the tiny
    # budget's overrides) left out, so the tab's first five columns are the varying ones
    assert list(infos) == ["loss", "loss.beta", "loss.delta"]
    assert all(info.differs for info in infos.values())
    assert list(infos["loss"].domain_discrete) == ["huber", "mse", "smooth_l1"]
    delta, beta = infos["loss.delta"].domain_interval, infos["loss.beta"].domain_interval
    assert (delta.min_value, delta.max_value) == (0.5, 2.0)
    assert (beta.min_value, beta.max_value) == (0.5, 1.0)
    assert [m.name.tag for m in experiment.metric_infos] == TAGS
    # one session group per variant, its seeds in it (the seed is not a hyperparameter); the
    # two smooth_l1 rows told apart by the loss.beta column
    assert len(groups) == VARIANTS
    assert {g["_sessions"] for g in groups} == {len(SEEDS)}
    smooth_l1 = [g for g in groups if g["loss"] == "smooth_l1"]
    assert sorted(g["loss.beta"] for g in smooth_l1) == [0.5, 1.0]


def test_a_single_run_names_its_own_columns(make_cfg, tmp_path: Path):
    cfg = make_cfg("data=regression", "model=mlp", "loss=huber", "loss.delta=0.5")
    start_run(cfg, tmp_path / "run", list(cfg.hydra.overrides.task), in_sweep=False)
    experiment, groups = hparams_tab(tmp_path / "run")
    values = read_events(tmp_path / "run")["hparams"]
    assert [info.name for info in experiment.hparam_infos] == sorted(values)
    assert {"data", "model", "loss", "loss.delta", "loss.reduction", "test_ckpt"} <= set(values)
    assert not any(info.differs for info in experiment.hparam_infos)
    assert [m.name.tag for m in experiment.metric_infos] == TAGS
    assert len(groups) == 1


@pytest.mark.parametrize(
    ("sessions", "columns"),
    [
        # nothing varies (one run, or seeds alone): every key, none differs
        ([{"b": 1, "a": "x"}, {"a": "x", "b": 1.0}], [("a", False), ("b", False)]),
        # a key some runs lack tells them apart; a constant is left out
        ([{"a": 1, "c": "k"}, {"a": 1, "b": 2, "c": "k"}], [("b", True)]),
        # True and 1 are equal to Python, not to TensorBoard
        ([{"a": True}, {"a": 1}], [("a", True)]),
    ],
)
def test_columns_are_the_keys_that_differ(sessions, columns):
    assert [(info.name, info.differs) for info in hparam_infos(sessions)] == columns


def test_a_multirun_job_leaves_the_experiment_to_the_sweep(make_cfg, monkeypatch):
    seen = []
    monkeypatch.setattr("trainer.run.train", lambda *args: seen.append(args[-1]))
    train.train(make_cfg())
    train.train(make_cfg("hydra.mode=MULTIRUN"))
    assert seen == [False, True]
