"""The suite sweeper: suites (``-m suite=seg_imbalance``), globs that keep to the task, dry runs,
staged selection, searches and tuned suites.

Hydra's basic sweeper takes one cartesian product of the command line, so CE and a grid of focal
settings cannot share one command (``-m loss=ce,focal loss.gamma=0,2`` fails on ``ce``). A suite
config (``conf/suite/*.yaml``) lists variants, each a list of overrides with its own grid, plus
the training seeds; this sweeper expands each variant's grid separately and launches the union
through the configured launcher (basic, joblib, submitit). Without ``suite=...`` it sweeps what
the basic sweeper sweeps, with these additions:

- a ``glob()`` over ``loss`` or ``data`` skips the jobs whose loss does not fit the data's task,
  and the data configs that need the user's files (``data.root``) none was given for,
  one log line each (``-m 'loss=glob(*)' data=regression`` runs the regression losses). A loss
  named explicitly (``loss=ce,dice``) is never skipped: a misfit fails as its own job with the
  one-line reason, and the comparison report lists it.
- ``dry_run=true`` prints every job's overrides and the count, and launches nothing.
- each job's directory (``hydra.sweep.subdir``) is named by the loss and the overrides that vary
  between the sweep's jobs, not by those every job shares (``debug=quick``): only the sweeper
  sees them all. A name that would repeat gets the job's number.

Its settings (``dry_run``, ``tune``, ``search.*``, ``max_batch_size``) are its structured config,
``hydra.sweeper.*`` (``hydra_plugins/losscmp/config.py``), which the command line names without the
prefix.

Three sweeps run in stages, each stage through ``self.launcher.launch``, each decision read from
the finished jobs' ``status.json`` (so any launcher works):

- a suite with ``select: [optimizer.lr]`` runs each variant's grid of the selected keys on the
  suite's first seed, then only the value with the best validation value of the tested
  checkpoint (``selection.value``, in the task's direction) on the other seeds;
- ``hparams_search=LOSS`` runs a seeded TPE search (``search.n_trials`` trials, launched
  ``search.parallel`` at a time; see ``trainer/search/``), stored in the sweep dir's Optuna
  journal (``optuna_journal.log``), and writes ``optimization_results.yaml`` into the sweep dir;
  the same command with the same ``hydra.sweep.dir`` resumes a killed search;
- ``suite=NAME tune=true`` runs such a search per variant, with the same number of trials, on
  ``search.trial_seed`` and a shortened budget with median pruning, under ``_search/<variant>/``
  (the studies in the one journal, by variant name); then each variant's best configuration at
  the full budget on the suite's seeds. A suite's ``select:`` keys are searched with the rest of
  each variant's space, which holds the learning rate the suites select: the search chooses them
  on validation, as the staged selection would. A selected key outside a variant's space is
  refused: it would be chosen a second time, on the suite's first seed.
"""

import itertools
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.losscmp.config import SearchConf
from trainer.cli import quoted
from trainer.config import declared_tasks, run_name
from trainer.search import trials as search_trials

if TYPE_CHECKING:
    from trainer.search.study import Search

log = logging.getLogger(__name__)

# groups whose glob() keeps to the jobs that can train: a loss must fit the data's task
FIT_CHECKED_GROUPS = {"loss", "data"}


def override_key(override: str) -> str:
    """``seed`` for ``seed=1``, ``+seed=1`` or ``~seed``."""
    return override.split("=", 1)[0].lstrip("+~")


def without(job: Sequence[str], keys: set[str]) -> list[str]:
    return [o for o in job if override_key(o) not in keys]


def override_string(override: Override) -> str:
    """An override that sweeps nothing, as one job's string: ``key=value``, and a deletion
    without a value as ``~key`` (Hydra's basic sweeper writes ``~key=null``, which deletes the
    key only where its value is null)."""
    key = override.get_key_element()
    if override.is_delete() and override.value() is None:
        return key
    return f"{key}={override.get_value_element_as_str()}"


def cartesian_jobs(overrides: Sequence[Override]) -> list[list[str]]:
    """Every job of a command line, as Hydra's basic sweeper expands it: one override string per
    key (a key given twice keeps its first place and its last value), each sweep (``a=1,2``,
    ``choice``, ``range``, ``glob``) enumerated, the last key varying fastest.

    >>> parse = OverridesParser.create().parse_overrides
    >>> cartesian_jobs(parse(["a=1,2", "b=x", "c=range(2)"]))
    [['a=1', 'b=x', 'c=0'], ['a=1', 'b=x', 'c=1'], ['a=2', 'b=x', 'c=0'], ['a=2', 'b=x', 'c=1']]
    """
    values: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            values[key] = [override_string(override)]
        elif override.is_discrete_sweep():
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:  # interval(): a search space, not a list of jobs
            raise ValueError(
                f"{key}: the suite sweeper enumerates choices, ranges and globs, not "
                f"{override.value_type.name}"
            )
    return [list(job) for job in itertools.product(*values.values())]


class SuiteSweeper(Sweeper):
    """Hydra's basic sweep (the cartesian product of the command line), plus suites,
    task-fitting globs, dry runs and staged sweeps, on Hydra's public ``Sweeper`` interface.

    ``sweep`` launches in stages through the launcher Hydra's plugin registry builds from the
    config (``hydra/launcher``), ``max_batch_size`` jobs at a time (None: all). The settings are
    :class:`~hydra_plugins.losscmp.config.SuiteSweeperConf`'s. Hydra imports every plugin module
    at each start (``--help`` too): the search modules (Optuna) and the tasks (torch) are imported
    in the methods that use them.
    """

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict | None = None,
        dry_run: bool = False,
        tune: bool = False,
        search: SearchConf | DictConfig | None = None,
    ) -> None:
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"suite sweeper: expected max_batch_size >= 1, got {max_batch_size}")
        if search is not None and search.parallel < 1:
            raise ValueError(f"suite sweeper: expected search.parallel >= 1, got {search.parallel}")
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.is_dry_run = dry_run
        self.tune = tune
        self.search_settings = search if search is not None else SearchConf()

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        overrides = self.parser().parse_overrides(
            [*(f"{key}={value}" for key, value in self.params.items()), *arguments]
        )
        self.next_job = 0
        self.names_taken: Counter[str] = Counter()
        suite = self.config.get("suite")
        in_suite = suite and any(o.key_or_group == "suite" for o in overrides)
        if self.config.get("hparams_search"):
            return self.search(overrides)
        if in_suite and self.tune:
            return self.tuned_suite(suite, overrides)
        if in_suite and suite.get("select"):
            return self.staged_suite(suite, overrides)
        jobs = self.jobs(overrides)
        if self.dry_run(jobs):
            return []
        return self.launch(jobs)[1]

    # --- expansion -----------------------------------------------------------------------

    def jobs(self, overrides: list[Override]) -> list[list[str]]:
        """The jobs of a command line: its suite's, or its own grid."""
        suite = self.config.get("suite")
        if suite and any(o.key_or_group == "suite" for o in overrides):
            return self.suite_jobs(suite, overrides)
        return self.grid(overrides)

    def parser(self) -> OverridesParser:
        # with the config loader, glob() lists the group options the run's search path holds
        return OverridesParser.create(config_loader=self.hydra_context.config_loader)

    def suite_jobs(self, suite: DictConfig, overrides: list[Override]) -> list[list[str]]:
        """Each variant's grid (with the suite's seeds), one after the other."""
        return [
            job
            for variant in suite.variants
            for job in self.grid(self.variant_overrides(suite, variant, overrides, suite.seeds))
        ]

    def variant_overrides(
        self,
        suite: DictConfig,
        variant: Sequence[str],
        overrides: list[Override],
        seeds: Sequence[int],
    ) -> list[Override]:
        """One variant's overrides: the suite's ``grid`` (a variant's own key wins), the variant,
        its seed list, then the command line, which wins over the suite (``trainer.max_epochs=1``
        shortens every job, ``seed=7`` replaces the suite's seeds)."""
        given = {o.get_key_element() for o in overrides}
        own = {override_key(o) for o in variant}
        suite_grid = [o for o in suite.get("grid") or [] if override_key(o) not in own]
        seed_sweep = [] if "seed" in given else [f"seed={','.join(str(s) for s in seeds)}"]
        extra = [
            o
            for o in self.parser().parse_overrides([*variant, *suite_grid, *seed_sweep])
            if o.get_key_element() not in given
        ]
        return list({o.get_key_element(): o for o in [*extra, *overrides]}.values())

    def grid(self, overrides: list[Override]) -> list[list[str]]:
        """The cartesian product (:func:`cartesian_jobs`), less the jobs a glob over
        ``loss`` or ``data`` drew that cannot train."""
        jobs = cartesian_jobs(overrides)
        globbed = {o.key_or_group for o in overrides if o.value_type == ValueType.GLOB_CHOICE_SWEEP}
        if not globbed & FIT_CHECKED_GROUPS:
            return jobs
        return [job for job in jobs if self.can_train(job)]

    def job_config(self, job: Sequence[str]) -> DictConfig:
        """The job's config, composed as the launcher will compose it."""
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(job))

    def can_train(self, job: list[str]) -> bool:
        """Whether the job's data config has every value it requires (a file config drawn by a
        glob without its ``data.root`` has not) and its loss declares the data's task (the data
        class's ``task``)."""
        cfg = self.job_config(job)
        choices = cfg.hydra.runtime.choices
        missing = sorted(OmegaConf.missing_keys(cfg.data))  # full keys: data.root
        if missing:
            log.info("skipped data=%s: it requires %s", choices.data, ", ".join(missing))
            return False
        task = get_class(cfg.data._target_).task
        if task in declared_tasks(cfg.loss):
            return True
        log.info(
            "skipped loss=%s: it does not fit data=%s (task %s)", choices.loss, choices.data, task
        )
        return False

    # --- launching -----------------------------------------------------------------------

    def dry_run(self, jobs: list[list[str]], count: str | None = None) -> bool:
        """With ``dry_run=true``: print the jobs, then ``count`` (default: how many)."""
        if not self.is_dry_run:
            return False
        for job in jobs:
            print(" ".join(job))
        print(f"{count or f'{len(jobs)} jobs'} (dry run: nothing trained)")
        return True

    def subdir_names(self, jobs: list[list[str]], basis: list[list[str]]) -> list[str]:
        """Each job's directory name: its loss, then its overrides whose value differs between
        the jobs of ``basis`` (the whole sweep, the stages still to come included)."""
        tables = [{override_key(o): o for o in job} for job in basis]
        keys = dict.fromkeys(k for table in tables for k in table)
        varying = {k for k in keys if len({table.get(k) for table in tables}) > 1}
        default_loss = self.config.hydra.runtime.choices.get("loss")
        names = []
        for job in jobs:
            loss = next((o.split("=", 1)[1] for o in job if override_key(o) == "loss"), None)
            names.append(
                run_name(loss or default_loss, [o for o in job if override_key(o) in varying])
            )
        return names

    def launch(
        self,
        jobs: list[list[str]],
        basis: list[list[str]] | None = None,
        names: list[str] | None = None,
    ) -> tuple[list[Path], list[Any]]:
        """Launch ``jobs`` in batches of ``max_batch_size``, each in its own subdir: ``names``, or
        named after what varies in ``basis`` (default: ``jobs``); a name an earlier job of the
        sweep took gets the job's number. Returns the run dirs and the launcher's returns."""
        # a subdir from the command line is the user's to name, but for the sweeper's own
        # (trials, retrained winners), which it reads back
        named = names is not None or not any(
            override_key(o) == "hydra.sweep.subdir" for o in self.config.hydra.overrides.hydra
        )
        names = names or self.subdir_names(jobs, basis or jobs)
        if self.next_job == 0:  # as Hydra's own sweeper: the sweep's config beside its runs
            sweep_dir = Path(self.config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        dirs, returns = [], []
        size = self.max_batch_size if self.max_batch_size else max(len(jobs), 1)
        for start in range(0, len(jobs), size):
            batch = [list(job) for job in jobs[start : start + size]]
            for number, (job, name) in enumerate(
                zip(batch, names[start : start + size], strict=True), self.next_job
            ):
                self.names_taken[name] += 1
                unique = name if self.names_taken[name] == 1 else f"{name}-job={number}"
                job += [f"hydra.sweep.subdir={quoted(unique)}"] if named else []
            if not getattr(self.launcher, "composes_every_job_first", False):
                # Hydra's early check that every job composes, about 0.25 s a job; a launcher
                # that composes the whole batch before it trains any job makes it itself
                self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=self.next_job)
            self.next_job += len(batch)
            for result in results:
                _ = result.return_value  # a job that raised fails the sweep, as in Hydra's own
                dirs.append(Path(result.hydra_cfg.hydra.runtime.output_dir))
            returns.append(results)
        return dirs, returns

    # --- staged selection ----------------------------------------------------------------

    def staged_suite(self, suite: DictConfig, overrides: list[Override]) -> list[Any]:
        """``select``: each variant's grid on the first seed, then the chosen values of the
        selected keys on the other seeds."""
        select = {str(key) for key in suite.select}
        given = {o.get_key_element() for o in overrides}
        seeds = [] if "seed" in given else list(suite.seeds)
        first = seeds[:1]
        stage_one = [
            job
            for variant in suite.variants
            for job in self.grid(self.variant_overrides(suite, variant, overrides, first))
        ]
        basis = [
            [*without(job, {"seed"}), f"seed={seed}"] for job in stage_one for seed in seeds
        ] or stage_one
        groups = {tuple(without(job, select | {"seed"})) for job in stage_one}
        count = f"{len(stage_one)} jobs, then the chosen {', '.join(sorted(select))} of each of "
        count += f"the {len(groups)} variants on seeds {seeds[1:]}: {len(groups) * len(seeds[1:])}"
        if self.dry_run(stage_one, count if seeds[1:] else None):
            return []
        dirs, returns = self.launch(stage_one, basis)
        command_line = self.as_strings(overrides)
        stage_two = []
        for group, chosen in self.choose(stage_one, dirs, select).items():
            variant = " ".join(o for o in group if o not in command_line)
            if chosen is None:
                log.warning("select: %s: no run has a validation value; none goes on", variant)
                continue
            values = " ".join(o for o in chosen if override_key(o) in select)
            log.info("select: %s: %s, on seeds %s", variant, values, seeds[1:])
            stage_two += [[*without(chosen, {"seed"}), f"seed={seed}"] for seed in seeds[1:]]
        return returns + self.launch(stage_two, basis)[1]

    @staticmethod
    def choose(
        jobs: list[list[str]], dirs: list[Path], select: set[str]
    ) -> dict[tuple[str, ...], list[str] | None]:
        """Per variant (the job's overrides but the selected keys and the seed), the job with the
        best ``selection.value`` in its task's direction (None: no job has one)."""
        best: dict[tuple[str, ...], tuple[float, list[str]] | None] = {}
        for job, run_dir in zip(jobs, dirs, strict=True):
            group = tuple(without(job, select | {"seed"}))
            best.setdefault(group, None)
            result = search_trials.read_trial(run_dir)
            if result.value is None:
                continue
            sign = 1 if search_trials.read_mode(run_dir) == "max" else -1
            if best[group] is None or sign * result.value > best[group][0]:
                best[group] = (sign * result.value, job)
        return {group: None if entry is None else entry[1] for group, entry in best.items()}

    # --- searches ------------------------------------------------------------------------

    def direction(self, job: Sequence[str]) -> str:
        """``maximize`` or ``minimize``: the job's task's direction, from its data class."""
        from trainer.tasks import TASKS

        task = get_class(self.job_config(job).data._target_).task
        return "maximize" if TASKS[task].mode == "max" else "minimize"

    def trial_overrides(self, search: "Search", number: int) -> list[str]:
        """What makes a run trial ``number`` of ``search``: no test, and the callback that reports
        its validation values to the search's stored study and stops it when the study prunes it.
        The journal's path is spelled out: an interpolation in an override would be resolved
        wherever ``overrides.yaml`` is read."""
        node = "+callbacks.optuna_pruning"
        return [
            "skip_test=true",
            f"{node}._target_=trainer.search.pruning.OptunaPruning",
            f"{node}.journal={quoted(str(search.journal))}",
            f"{node}.study_name={quoted(search.name)}",
            f"{node}.trial_number={number}",
        ]

    def run_search(
        self,
        name: str,
        base: list[str],
        space: dict[str, DictConfig],
        folder: str,
    ) -> "Search":
        """A search of ``search.n_trials`` trials over ``space`` from the job ``base``, stored as
        the study ``name`` in the sweep dir's journal, launched ``search.parallel`` at a time;
        trial ``N`` runs in ``<folder>/trial=N``. A journal that holds the search resumes it."""
        from trainer.search.space import as_overrides
        from trainer.search.study import PlannedTrial, Search

        settings = self.search_settings
        sweep_dir = Path(self.config.hydra.sweep.dir).absolute()  # the trials may run elsewhere
        sweep_dir.mkdir(parents=True, exist_ok=True)
        search = Search(
            name=name,
            space=space,
            direction=self.direction(base),
            journal=sweep_dir / search_trials.JOURNAL_FILE,
            trials_dir=sweep_dir / folder,
            n_trials=int(settings.n_trials),
            parallel=int(settings.parallel),
            sampler_seed=int(settings.sampler_seed),
            startup_trials=int(settings.startup_trials),
            warmup_epochs=int(settings.warmup_epochs),
        )

        def launch_batch(batch: list[PlannedTrial]) -> None:
            jobs = []
            for trial in batch:
                values = as_overrides(trial.values)
                log.info("%s: trial %d: %s", name, trial.number, " ".join(values))
                job = [*without(base, {override_key(v) for v in values}), *values]
                jobs.append([*job, *self.trial_overrides(search, trial.number)])
            self.launch(jobs, names=[str(t.run_dir.relative_to(sweep_dir)) for t in batch])

        search.run(launch_batch)
        return search

    def search(self, overrides: list[Override]) -> list[Any]:
        """``hparams_search=LOSS``: one search from the command line's job."""
        from trainer.search import space as search_space

        jobs = cartesian_jobs(overrides)
        if len(jobs) != 1:
            raise ValueError(
                "hparams_search: the search picks the values; the command line may not sweep "
                f"({len(jobs)} jobs)"
            )
        space = search_space.space_of(self.config.hparams_search.get("space"))
        name = self.config.hydra.runtime.choices.get("hparams_search")
        if self.dry_run(jobs, f"{self.search_settings.n_trials} trials over {', '.join(space)}"):
            return []
        search = self.run_search(name, jobs[0], space, "")
        results_path = Path(self.config.hydra.sweep.dir) / search_trials.RESULTS_FILE
        search_trials.write_results(results_path, search.results())
        log.info("search %s: best %s: %s", name, search.best_values(), results_path)
        return []

    # --- tuned suites --------------------------------------------------------------------

    def variant_space(
        self, variant: Sequence[str], base: list[str]
    ) -> tuple[dict[str, DictConfig], list[str]]:
        """The variant's search space: its loss's ``conf/hparams_search/<loss>.yaml`` (the
        learning rate alone where the loss has none), less the keys the variant fixes; and
        those fixed keys."""
        from trainer.search import space as search_space

        loss = self.job_config(base).hydra.runtime.choices.loss
        options = self.hydra_context.config_loader.get_group_options("hparams_search")
        chosen = loss if loss in options else "lr"
        space = search_space.space_of(
            self.job_config([f"hparams_search={chosen}"]).hparams_search.space
        )
        fixed = [
            o
            for o in self.parser().parse_overrides(list(variant))
            if not o.is_sweep_override() and o.get_key_element() in space
        ]
        for override in fixed:
            del space[override.get_key_element()]
        return space, [f"{o.get_key_element()}={o.get_value_element_as_str()}" for o in fixed]

    def tuned_suite(self, suite: DictConfig, overrides: list[Override]) -> list[Any]:
        """``tune=true``: per variant, a search over its space on ``search.trial_seed`` with a
        shortened budget; then each variant's best on the suite's seeds at the full budget."""
        from trainer.search import space as search_space

        settings = self.search_settings
        max_epochs = int(self.config.trainer.max_epochs)
        trial_epochs = max(1, math.ceil(max_epochs * float(settings.budget_share)))
        searches = self.variant_searches(suite, overrides)
        # the cost in epochs, before pruning saves some, against the suite without tuning
        trials = len(searches) * int(settings.n_trials)
        retrains = len(searches) * len(suite.seeds)
        epochs = trials * trial_epochs + retrains * max_epochs
        plain = len(self.suite_jobs(suite, overrides)) * max_epochs
        count = (
            f"{len(searches)} searches of {settings.n_trials} trials ({trials} trials of "
            f"{trial_epochs} epochs, median-pruned), then each best on seeds "
            f"{list(suite.seeds)}: {retrains} jobs of {max_epochs}; at most {epochs} epochs, "
            f"{epochs / plain:.1f}x the {plain} of the suite untuned"
        )
        if self.dry_run([base for _, base, _, _ in searches], count):
            return []
        finals, final_names = [], []
        for name, base, space, fixed in searches:
            shortened = [
                *without(base, {"trainer.max_epochs"}),
                f"trainer.max_epochs={trial_epochs}",
            ]
            search = self.run_search(name, shortened, space, f"{search_trials.SEARCH_DIR}/{name}")
            search_trials.write_results(
                Path(self.config.hydra.sweep.dir)
                / search_trials.SEARCH_DIR
                / name
                / search_trials.RESULTS_FILE,
                search.results(fixed),
            )
            if search.best is None:
                log.warning("tune: %s: no trial completed; the variant is not retrained", name)
                continue
            best = search_space.as_overrides(search.best_values())
            log.info("tune: %s: best %s (validation %.4g)", name, best, search.best.value)
            retrain = [*without(base, {"seed", *space}), *best]
            for seed in suite.seeds:
                finals.append([*retrain, f"seed={seed}"])
                final_names.append(run_name(name, [f"seed={seed}"]))
        return self.launch(finals, names=final_names)[1]

    def variant_searches(
        self, suite: DictConfig, overrides: list[Override]
    ) -> list[tuple[str, list[str], dict[str, DictConfig], list[str]]]:
        """A tuned suite's searches: (name, base job, space, keys the variant fixes) for each
        variant, and for each value of a variant's grid over keys its space lacks (triplet's
        mining). The suite's ``select:`` keys are searched with the rest of each space: the
        search chooses them on validation, as the staged selection would, within a range rather
        than a grid; a selected key outside a variant's space is refused."""
        settings = self.search_settings
        command_line = self.as_strings(overrides)
        select = [str(key) for key in suite.get("select") or []]
        searches = []
        for variant in suite.variants:
            probe = self.variant_overrides(suite, variant, overrides, [settings.trial_seed])
            probe_space, fixed = self.variant_space(variant, self.grid(probe)[0])
            for key in select:
                if key not in probe_space and key not in {override_key(o) for o in fixed}:
                    raise ValueError(
                        f"tune=true searches each variant's space; suite="
                        f"{self.config.hydra.runtime.choices.suite}'s select: [{key}] is not in "
                        f"the space of [{', '.join(variant)}], so it would be chosen again on "
                        "the suite's first seed: drop one of them"
                    )
            # the variant's grids over its space's keys (the suite's LR grid too) give way to the
            # search; its other grids (triplet's mining) remain variants, a search each
            kept = [
                o
                for o in probe
                if not (o.is_sweep_override() and o.get_key_element() in probe_space)
            ]
            for base in self.grid(kept):
                space, fixed = self.variant_space(variant, base)
                loss = self.job_config(base).hydra.runtime.choices.loss
                apart = [o for o in without(base, {"seed", *space}) if o not in command_line]
                searches.append((run_name(loss, apart), base, space, fixed))
        return searches

    @staticmethod
    def as_strings(overrides: list[Override]) -> set[str]:
        """The command line's own overrides, as strings: in every job, so in no variant name."""
        return {override_string(o) for o in overrides if not o.is_sweep_override()}
