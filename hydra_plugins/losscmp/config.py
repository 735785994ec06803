"""The suite sweeper's settings, declared once as its structured config (``hydra/sweeper=suite``),
and the short command-line names they keep: ``dry_run=true``, ``tune=true``, ``search.n_trials=20``.

The settings steer the sweep, not a job: they live under ``hydra.sweeper`` (as Hydra's own
sweepers' settings do), so no job's config, run name or recorded hyperparameters carries them.
The command line reaches them by their short names, which the front door (``train.py``) rewrites
before Hydra reads the command line (:func:`sweeper_argument`).
"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

SWEEPER_NODE = "hydra.sweeper"


@dataclass
class SearchConf:
    """The searches of ``hparams_search=LOSS`` and ``tune=true`` (``trainer/search/``)."""

    n_trials: int = 12  # per search; tune=true gives every variant the same number (equal budget)
    # trials launched at once, as one batch of the launcher (joblib, submitit run them together);
    # 1: each proposal sees every trial before it, which a small budget needs most
    parallel: int = 1
    sampler_seed: int = 0  # TPE's seed: the same seed proposes the same trials
    startup_trials: int = 3  # completed trials before median pruning starts (Optuna's MedianPruner)
    warmup_epochs: int = 1  # epochs a trial always trains before it can be pruned
    budget_share: float = 0.5  # tune=true: trials train this share of trainer.max_epochs (ceil)
    # tune=true: the trials' training seed, none of a suite's, so the compared retrained runs are
    # fresh seeds that did not pick their own hyperparameters
    trial_seed: int = 100


@dataclass
class SuiteSweeperConf:
    _target_: str = "hydra_plugins.losscmp.suite_sweeper.SuiteSweeper"  # see its module docstring
    max_batch_size: int | None = None  # jobs handed to the launcher at once; None: all
    params: dict[str, str] | None = None  # overrides every job gets, as Hydra's basic sweeper's
    dry_run: bool = False  # print each job's overrides and the count, train nothing
    tune: bool = False  # with suite=NAME: search each variant's space first, then compare the best
    search: SearchConf = field(default_factory=SearchConf)


# the settings the command line names without their hydra.sweeper. prefix
SHORT_NAMES = ("dry_run", "tune", "search")


def sweeper_argument(argument: str) -> str:
    """The Hydra override for a command-line argument: a sweeper setting by its short name gets
    its ``hydra.sweeper.`` prefix (and keeps a ``+``/``~`` prefix), anything else is unchanged.

    >>> sweeper_argument("search.n_trials=20"), sweeper_argument("loss.gamma=2")
    ('hydra.sweeper.search.n_trials=20', 'loss.gamma=2')
    """
    body = argument.lstrip("+~")
    key = body.split("=", 1)[0]
    if argument.startswith("-") or key.split(".", 1)[0] not in SHORT_NAMES:
        return argument
    return f"{argument[: len(argument) - len(body)]}{SWEEPER_NODE}.{body}"


ConfigStore.instance().store(
    group="hydra/sweeper", name="suite", node=SuiteSweeperConf, provider="losscmp"
)
