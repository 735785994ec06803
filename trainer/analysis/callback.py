"""The Hydra callback that writes the comparison report into the sweep dir when a multirun ends."""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class CompareOnMultirunEnd(Callback):
    """Hydra callback: write the comparison report, and the per-variant TensorBoard seed means,
    into the sweep dir when a multirun ends (``suite.select`` and ``suite.baseline`` honoured)."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.sweeper.get("dry_run"):  # the suite sweeper's setting: nothing ran
            return
        if config.get("hparams_search"):  # untested trials: optimization_results.yaml says it
            return
        # scipy and matplotlib load here, not when Hydra builds the callback: a dry run or a
        # command-line mistake answers without them
        from trainer.analysis.report import write_report

        try:
            report = write_report(Path(config.hydra.sweep.dir), tensorboard_view=True)
            log.info("comparison report: %s", report.summary)
        except Exception as error:  # the runs' own results are already on disk: keep them
            log.error("comparison report failed: %s", error)
