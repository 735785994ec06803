"""Command-line pre-checks that run before Hydra starts, and the one-line form of user errors."""

from pathlib import Path

from datasets.mnist import DataError
from trainer.config import CONF_DIR, ConfigError

# What a user's input can cause; anything else is a bug and keeps its traceback. The first ones
# name the loss, dataset or setting themselves; the others get their type as a prefix.
SELF_EXPLAINED = (ValueError, TypeError, ConfigError, DataError)
USER_ERRORS = (*SELF_EXPLAINED, LookupError, OSError)


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
    if not isinstance(cause, USER_ERRORS):
        return None
    message = " ".join(str(cause).split()) or type(cause).__name__
    return message if isinstance(cause, SELF_EXPLAINED) else f"{type(cause).__name__}: {message}"


def unknown_choice(args: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """One line naming the first ``group=option`` argument whose option has no config, with the
    choices; None when all exist. Sweeps (``loss=ce,focal``) are checked option by option. With
    an extra ``hydra.searchpath`` the options may live elsewhere: Hydra itself reports those.

    >>> unknown_choice(["loss=dice", "loss=no_such"])
    "unknown loss 'no_such'; choose one of: balanced_bce, bce, ..."
    """
    if any(arg.startswith("hydra.searchpath") for arg in args):
        return None
    for arg in args:
        group, _, options = arg.lstrip("+").partition("=")
        if (
            not options
            or "." in group
            or group.startswith("hydra")
            or not (conf_dir / group).is_dir()
        ):
            continue
        known = sorted(path.stem for path in (conf_dir / group).glob("*.yaml"))
        for option in options.split(","):
            if option.strip("'\"") not in known and option != "null":
                return f"unknown {group} {option!r}; choose one of: {', '.join(known)}"
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
