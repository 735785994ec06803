"""train.py's front door: the command-line pre-checks that run before Hydra starts, the help page,
the sweeper's settings by their short names, and the one-line form of user errors.

Light to import (no torch, no Lightning): a mistyped option, ``--help`` and a dry run answer in
about a second; the training runtime is imported where a job runs."""

import functools
import warnings
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from string import Template

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override, QuotedString
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from datasets.errors import DataError
from hydra_plugins.losscmp.config import sweeper_argument
from trainer.config import CONF_DIR, CONFIG_NAME, ConfigError

# What a user's input can cause; anything else is a bug and keeps its traceback. The first ones
# name the loss, dataset or setting themselves; the others get their type as a prefix.
SELF_EXPLAINED = (ValueError, TypeError, ConfigError, DataError)
USER_ERRORS = (*SELF_EXPLAINED, LookupError, OSError)
# flags that make Hydra print (config, help, info) instead of running a job
INSPECT_FLAGS = ("-c", "--cfg", "-i", "--info", "-h", "--help", "--hydra-help", "--version", "-sc")
HELP_FLAGS = ("-h", "--help")
# config groups that train.py's command line does not choose from: Hydra's own (--hydra-help lists
# them), and the findings' specs, which scripts/findings.py reads
NOT_TRAIN_GROUPS = ("hydra", "findings")
# Hydra's flags that take the next argument as their value
VALUE_FLAGS = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name"}
VALUE_FLAGS |= {"-cd", "--config-dir", "-i", "--info", "-sc", "--shell-completion"}
# settings that only mean something to a sweep: given without -m they would silently do nothing
MULTIRUN_ONLY = {
    "suite": "a suite is a sweep of jobs",
    "dry_run": "dry_run lists the jobs of a sweep",
}


def root_cause(error: BaseException) -> BaseException:
    """The original error behind Hydra's instantiation wrappers."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def one_line(error: BaseException) -> str | None:
    """``"dice: expected eps > 0.0, got -1"`` for a user error (one line), None for a bug.

    >>> from hydra.errors import InstantiationException
    >>> try:
    ...     try:
    ...         raise ValueError("dice: expected eps > 0.0, got -1")
    ...     except ValueError as e:
    ...         raise InstantiationException("Error in call to target 'DiceLoss'") from e
    ... except InstantiationException as e:
    ...     print(one_line(e))
    dice: expected eps > 0.0, got -1
    """
    cause = root_cause(error)
    if isinstance(cause, MissingMandatoryValue):  # a ``???`` left in a config (data.root)
        return f"{cause.full_key} is required: add {cause.full_key}=... to the command line"
    if not isinstance(cause, USER_ERRORS):
        return None
    message = " ".join(str(cause).split()) or type(cause).__name__
    return message if isinstance(cause, SELF_EXPLAINED) else f"{type(cause).__name__}: {message}"


def parse_overrides(args: list[str]) -> list[Override]:
    """The command line's overrides as Hydra's own parser reads them. Flags (``-m``) and their
    values (``--cfg job``) are not overrides; neither is anything Hydra's grammar rejects, which
    Hydra then reports itself."""
    parser = OverridesParser.create()
    overrides = []
    for arg in args:
        if arg.startswith("-"):
            continue
        try:
            overrides.append(parser.parse_override(arg))
        except HydraException:
            continue
    return overrides


def quoted(value: str) -> str:
    """A value for an override, as a quoted string: ``=`` and ``,`` would read as syntax."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unquoted(element: object) -> object:
    return element.text if isinstance(element, QuotedString) else element


def group_options(override: Override, known: list[str]) -> list[str | None]:
    """The options a config-group override selects, expanded as Hydra's basic sweeper expands
    them: ``a,b`` and ``choice(a,b)`` (also shuffled or sorted) give each option, ``glob(...)``
    the ``known`` options it matches, a list several configs at once; None stands for ``null``.
    ``range`` and ``interval`` make numbers, which no group option is named.

    >>> parse = OverridesParser.create().parse_override
    >>> group_options(parse("loss=glob(b*,exclude=bce_*)"), ["balanced_bce", "bce", "bce_manual"])
    ['balanced_bce', 'bce']
    >>> group_options(parse("loss=choice(bce,'dice')"), [])
    ['bce', 'dice']
    """
    value = override.value()
    if isinstance(value, Glob):
        return value.filter(known)
    if override.is_range_sweep() or override.is_interval_sweep():
        raise ConfigError(
            f"{override.key_or_group}: range() and interval() sweep numbers; "
            "a config group sweeps with a,b or choice(...) or glob(...)"
        )
    if override.is_choice_sweep():
        values = list(override.sweep_iterator(transformer=_unquoted))
    else:
        values = value if isinstance(value, list) else [value]
    return [None if v is None else str(v) for v in values]


def search_path_entries(args: list[str], overrides: list[Override]) -> list[str]:
    """What Hydra adds to the config search path from this command line: the entries of a
    ``hydra.searchpath`` override, then each ``--config-dir`` as a ``file://`` entry."""
    entries = []
    for override in overrides:
        if override.key_or_group == "hydra.searchpath" and not override.is_delete():
            value = override.value()
            entries += [str(v) for v in (value if isinstance(value, list) else [value])]
    for flag, value in pairwise([*args, ""]):  # each argument with the one after it
        if flag in ("-cd", "--config-dir"):
            entries.append(f"file://{Path(value).resolve()}")
        elif flag.startswith("--config-dir="):
            entries.append(f"file://{Path(flag.split('=', 1)[1]).resolve()}")
    return entries


def group_lister(args: list[str], overrides: list[Override]) -> Callable[[str], list[str]]:
    """``options(group)``: the sorted options the initialized Hydra's config loader finds for a
    config group on this command line's search path (the primary config dir, then
    ``hydra.searchpath`` and ``--config-dir``); empty for a key that is no config group."""
    entries = search_path_entries(args, overrides)
    searchpath = [f"hydra.searchpath=[{','.join(quoted(e) for e in entries)}]"] if entries else []
    loader = GlobalHydra.instance().config_loader()

    @functools.cache  # each listing copies Hydra's config repository: a few hundredths of a second
    def listed(path: str, kind: ObjectType) -> list[str]:
        with warnings.catch_warnings():  # a missing search path entry: Hydra warns itself later
            warnings.simplefilter("ignore", UserWarning)
            return sorted(loader.get_group_options(path, kind, CONFIG_NAME, searchpath))

    def options(group: str) -> list[str]:
        parent, _, name = group.rpartition("/")
        return listed(group, ObjectType.CONFIG) if name in listed(parent, ObjectType.GROUP) else []

    return options


def unknown_choice(args: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """One line naming the first ``group=option`` argument whose option has no config, with the
    choices; None when all exist. Sweeps are expanded as Hydra expands them (``loss=ce,focal``,
    ``loss=choice(ce,focal)``, ``loss=glob(*)``, which must match at least one option).

    >>> unknown_choice(["-m", "loss=choice(dice,no_such)"])
    "unknown loss 'no_such'; choose one of: balanced_bce, bce, ..."
    """
    overrides = parse_overrides(args)
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir.resolve())):
        options_of = group_lister(args, overrides)
        for override in overrides:
            group = override.key_or_group
            if override.value_type is None or override.is_hydra_override() or "." in group:
                continue  # `~loss` (no value), Hydra's own groups, or a config value (loss.gamma)
            known = options_of(group)
            if known and (line := invalid_option(override, known)):
                return line
    return None


def invalid_option(override: Override, known: list[str]) -> str | None:
    """One line when the config-group ``override`` selects no option in ``known``."""
    group = override.key_or_group
    choose = f"choose one of: {', '.join(known)}"
    try:
        options = group_options(override, known)
    except ConfigError as error:
        return str(error)
    if isinstance(override.value(), Glob) and not options:
        return f"{override.input_line} matches no {group}; {choose}"
    for option in options:
        if option is not None and option not in known:
            return f"unknown {group} {option!r}; {choose}"
    return None


def multirun_misuse(args: list[str]) -> str | None:
    """One line when a setting that only a sweep uses (``suite=...``, ``dry_run=true``) comes
    without ``-m`` (a plain run would ignore it and train the defaults instead), or when one
    sweep is given several suites (each suite is a sweep of its own).

    >>> multirun_misuse(["suite=seg_imbalance"])
    'a suite is a sweep of jobs: add -m (python train.py -m suite=seg_imbalance)'
    >>> multirun_misuse(["-m", "suite=seg_imbalance"]) is None
    True
    """
    overrides = parse_overrides(args)
    for override in overrides:
        if override.key_or_group == "suite" and override.is_sweep_override():
            return f"{override.input_line}: one suite per sweep; run each with its own -m"
    multirun = any(flag in args for flag in ("-m", "--multirun", *INSPECT_FLAGS)) or any(
        o.key_or_group == "hydra.mode" and o.value() == "MULTIRUN" for o in overrides
    )
    for override in [] if multirun else overrides:
        reason = MULTIRUN_ONLY.get(override.key_or_group)
        if reason and not override.is_delete() and override.value() not in (None, False):
            return f"{reason}: add -m (python train.py -m {override.input_line})"
    return None


def unwritable_output(args: list[str]) -> str | None:
    """One line when the run's output directory cannot be created, checked before Hydra creates it
    (and fails with a traceback): ``hydra.run.dir``/``hydra.sweep.dir``/``paths.log_dir`` if given,
    else ``outputs``. Creating it early costs nothing: the run would create it anyway.

    >>> unwritable_output(["hydra.run.dir=/proc/no/such/run"])
    'cannot create the output directory /proc/no/such/run: FileNotFoundError'
    """
    keys = ("hydra.run.dir=", "hydra.sweep.dir=", "paths.log_dir=")
    directory = next((a.split("=", 1)[1] for a in args if a.startswith(keys)), "outputs")
    if "${" in directory:  # interpolated: Hydra resolves it
        return None
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        probe = Path(directory) / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        return f"cannot create the output directory {directory}: {type(error).__name__}"
    return None


# overrides a resumed run may change: how it shows progress, not what it trains
RESUME_MAY_CHANGE = ("trainer.enable_progress_bar",)


def resumed_overrides(args: list[str]) -> tuple[list[str], str | None]:
    """With ``resume=RUN_DIR``: the run's own overrides (its ``.hydra/overrides.yaml``) that the
    command line does not repeat, and one line when the command line gives one of them another
    value (a resumed run continues the config it was trained with); ``[]`` and None without.

    ``python train.py resume=DIR`` alone thus continues ``loss=focal data=regression`` as such,
    where Hydra alone would compose the defaults around the checkpoint.
    """
    overrides = parse_overrides(args)
    run_dir = next(
        (_unquoted(o.value()) for o in overrides if o.key_or_group == "resume" and o.value()), None
    )
    saved = Path(str(run_dir)) / ".hydra" / "overrides.yaml" if run_dir else None
    if saved is None or not saved.is_file():
        return [], None
    given = {o.key_or_group.lstrip("+~"): o for o in overrides}
    restored = []
    for override in parse_overrides([str(line) for line in OmegaConf.load(saved)]):
        key = override.key_or_group.lstrip("+~")
        if key == "resume":
            continue
        if key not in given:
            restored.append(override.input_line)
        elif given[key].input_line != override.input_line and key not in RESUME_MAY_CHANGE:
            return [], (
                f"resume: {run_dir} was trained with {override.input_line}; "
                f"{given[key].input_line} would change the run it continues: leave it out "
                "(resume= restores the run's own overrides)"
            )
    return restored, None


def hydra_arguments(args: list[str]) -> list[str]:
    """The command line as Hydra reads it: a resumed run's own overrides first
    (:func:`resumed_overrides`), the sweeper's settings by their short names (``dry_run=true``,
    ``tune=true``, ``search.n_trials=20``) under ``hydra.sweeper``, where the suite sweeper
    declares them; a flag's value (``--cfg job``, ``-p loss``) as it is.

    >>> hydra_arguments(["-m", "suite=boxes", "dry_run=true", "-p", "search"])
    ['-m', 'suite=boxes', 'hydra.sweeper.dry_run=true', '-p', 'search']
    """
    restored, _ = resumed_overrides(args)
    return [
        arg if before in VALUE_FLAGS else sweeper_argument(arg)
        for before, arg in pairwise(["", *restored, *args])  # each argument with the one before
    ]


def train_groups() -> str:
    """``loss: balanced_bce, bce, ...``: a line per config group train.py chooses from, with its
    options, from the sources of the initialized Hydra's config loader (its search path)."""
    sources = GlobalHydra.instance().config_loader().get_sources()

    def listed(path: str, kind: ObjectType) -> list[str]:
        found = {n for s in sources if s.is_group(path) for n in s.list(path, results_filter=kind)}
        return sorted(found)

    lines, parents = [], [""]
    while parents:
        parent = parents.pop(0)
        for name in listed(parent, ObjectType.GROUP):
            group = f"{parent}/{name}" if parent else name
            if group in NOT_TRAIN_GROUPS:
                continue
            if options := listed(group, ObjectType.CONFIG):
                lines.append(f"{group}: {', '.join(options)}")
            parents.append(group)
    return "\n".join(sorted(lines))


def help_page(args: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """With ``-h``/``--help``: the app's help page, Hydra's ``hydra.help.template`` composed for
    this command line, its ``$APP_CONFIG_GROUPS`` the groups train.py chooses from
    (:func:`train_groups`); None without. Hydra's own ``--help`` would list every config group
    (its own too, a second on this CPU) and, among them, the findings' specs; ``--hydra-help``
    stays Hydra's."""
    if not any(arg in HELP_FLAGS for arg in args):
        return None
    overrides = [o.input_line for o in parse_overrides(hydra_arguments(args))]
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir.resolve())):
        config = compose(CONFIG_NAME, overrides=overrides, return_hydra_config=True)
        page = Template(config.hydra.help.template)
        return page.safe_substitute(APP_CONFIG_GROUPS=train_groups())


def command_line_error(args: list[str]) -> str | None:
    """The first pre-check that fails, as one line; None when the command line may go to Hydra."""
    return (
        resumed_overrides(args)[1]
        or unknown_choice(args)
        or multirun_misuse(args)
        or unwritable_output(args)
    )
