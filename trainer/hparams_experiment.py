"""TensorBoard's HParams *experiment*: which hyperparameters are the HParams tab's columns and
which scalar tags its metrics, for one run or for a whole sweep. TensorBoard only; no Lightning.

What TensorBoard (2.21, ``tensorboard/plugins/hparams/backend_context.py``, and the HParams tab's
query pane) does with it:

- ``_find_experiment_tag``: it takes the experiment of the first run it finds holding an
  ``_hparams_/experiment`` tag ("arbitrarily pick the first one") and uses it as it is. When each
  run of a sweep wrote its own, the columns were one run's keys: ``loss.delta`` of a huber run,
  no ``loss.beta``, so the two smooth_l1 rows looked the same.
- ``_compute_experiment_from_runs``: only when no run holds one does it build an experiment from
  the runs' session start infos: the union of their keys, each with ``differs`` (two or more
  values among the runs that have it), but with every scalar tag of every run as a metric
  (``epoch``, ``lr-AdamW``, ``perf/...``), the run's results among them in name order.
- ``_sort_and_reduce_to_hparams_limit`` sorts the hyperparameters ``differs`` first, then by
  name; the tab then checks the first five of them, whatever ``differs`` says, and lists the
  rest unchecked. So ``differs`` only orders the constants last; it does not hide them: with
  fewer than five varying keys, constants (``data``, ``debug``, ``loss.reduction``) fill the
  checked columns.

Hence: a sweep's runs write only their session start info (the values, whose hash groups a
variant's seeds), and the sweep writes one experiment into its sweep dir when it ends
(:func:`write_sweep_experiment`): its runs' metric tags, and the keys whose values differ between
its runs, each marked ``differs`` (a key some runs lack differs: its absence tells them apart).
The constants are left out, as the tab cannot hide them otherwise; when nothing varies (a sweep
over seeds alone) every key is a column, as in a single run. A single run writes its own
experiment at its start (``trainer.records.write_hparams_entry``): nothing varies in one run, so
all its keys. A sweep killed before its end has no experiment; TensorBoard then computes one from
the session start infos (every key, every scalar as a metric).
"""

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

Value = bool | int | float | str
EVENT_FILES = "events.out.tfevents.*"
# the sweep's experiment file (events.out.tfevents.<time>.<host>.<pid>.<n>.hparams): a second
# write (a sweep rerun into the same dir) replaces it, as TensorBoard keeps a tag's first metadata
EXPERIMENT_SUFFIX = ".hparams"


def _kind(value: Value) -> str:
    # bool before number: True is an int to Python, a separate type to TensorBoard
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "string"


def _domain(values: Sequence[Value]) -> hparams_summary.Domain | None:
    """The values' domain as TensorBoard computes one: an interval over numbers, the distinct
    values of strings or bools; none for a mix (the column then has no filter)."""
    kinds = {_kind(v) for v in values}
    if kinds == {"number"}:
        return hparams_summary.RealInterval(float(min(values)), float(max(values)))
    if len(kinds) == 1:
        return hparams_summary.Discrete(sorted(set(values)))
    return None


def hparam_infos(sessions: Sequence[Mapping[str, Value]]) -> list[api_pb2.HParamInfo]:
    """The columns for runs with these hyperparameter values (``sessions``): the keys whose
    values differ between the runs (or that some runs lack), marked ``differs``, by name; every
    key, none marked, when nothing differs."""
    values: dict[str, list[Value]] = {}
    for session in sessions:
        for key, value in session.items():
            values.setdefault(key, []).append(value)
    differs = {
        key: len(found) < len(sessions) or len({(_kind(v), v) for v in found}) > 1
        for key, found in values.items()
    }
    shown = sorted(key for key in values if differs[key]) or sorted(values)
    infos = []
    for key in shown:
        info = api_pb2.HParamInfo(name=key, differs=differs[key])
        domain = _domain(values[key])
        if domain is not None:
            domain.update_hparam_info(info)
        infos.append(info)
    return infos


def experiment_summary(
    sessions: Sequence[Mapping[str, Value]], metric_tags: Sequence[str]
) -> summary_pb2.Summary:
    """The ``_hparams_/experiment`` summary for runs with these hyperparameter values: the
    columns of :func:`hparam_infos` and ``metric_tags`` as the metrics, which the HParams plugin
    reads from each run's own scalars.

    Built as ``summary_v2.hparams_config_pb`` builds it (``HParam`` has no ``differs``)."""
    experiment = api_pb2.Experiment(
        hparam_infos=hparam_infos(sessions),
        metric_infos=[hparams_summary.Metric(tag).as_proto() for tag in metric_tags],
        time_created_secs=time.time(),
    )
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=metadata.EXPERIMENT_TAG,
        metadata=metadata.create_summary_metadata(
            plugin_data_pb2.HParamsPluginData(experiment=experiment)
        ),
        tensor=metadata.NULL_TENSOR,
    )
    return summary


def session_hparams(run_dir: Path) -> dict[str, Value] | None:
    """The hyperparameter values of the TensorBoard run in ``run_dir``, from the session start
    info the run wrote at its start; None when it has none (the seed means in ``_variants/``)."""
    for path in sorted(run_dir.glob(EVENT_FILES)):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == metadata.SESSION_START_INFO_TAG:
                    content = value.metadata.plugin_data.content
                    info = metadata.parse_session_start_info_plugin_data(content)
                    return {
                        key: getattr(v, v.WhichOneof("kind")) for key, v in info.hparams.items()
                    }
    return None


def _recorded_metric_tags(run_dir: Path) -> list[str]:
    """The metric tags the run recorded in its ``status.json`` at its start (none without one)."""
    status = run_dir / "status.json"
    return json.loads(status.read_text()).get("metric_tags", []) if status.exists() else []


def write_sweep_experiment(sweep_dir: Path) -> int:
    """One experiment for every TensorBoard run below ``sweep_dir`` (each run dir's event files
    with a session start info), into ``sweep_dir``: its columns from the runs' values, its
    metrics the union of the tags the runs recorded in ``status.json``. Returns the number of
    runs (nothing is written without one)."""
    for previous in sweep_dir.glob(EVENT_FILES + EXPERIMENT_SUFFIX):
        previous.unlink()
    sessions, tags = [], []
    for run_dir in sorted({path.parent for path in sweep_dir.rglob(EVENT_FILES)}):
        hparams = session_hparams(run_dir)
        if hparams is None:
            continue
        sessions.append(hparams)
        tags += [tag for tag in _recorded_metric_tags(run_dir) if tag not in tags]
    if sessions:
        writer = EventFileWriter(str(sweep_dir), filename_suffix=EXPERIMENT_SUFFIX)
        summary = experiment_summary(sessions, tags)
        writer.add_event(event_pb2.Event(wall_time=time.time(), summary=summary))
        writer.close()
    return len(sessions)
