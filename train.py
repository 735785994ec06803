"""Train one model with one loss on one dataset, as the Hydra config says; test; log everything.

python train.py loss=focal
python train.py -m loss=focal loss.gamma=0,1,2,5 loss.alpha=0.25,0.5
python train.py -m hparams_search=focal search.n_trials=20
tensorboard --logdir outputs
"""

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainer.cli import command_line_error, help_page, hydra_arguments, one_line
from trainer.config import register_resolvers
from trainer.search.trials import objective

register_resolvers()
log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    # the training runtime (torch, Lightning) is imported where a job runs: the command line's
    # checks, --help and dry runs answer without it
    import lightning as L
    from hydra.utils import instantiate

    from trainer.module import LossExperiment
    from trainer.preflight import check_run, preflight
    from trainer.records import (
        build_loggers,
        final_metrics,
        first_stop_reason,
        log_end,
        log_start,
        metric_tags,
        nonfinite_counts,
        recorded_status,
        selection,
        task_record,
        tolerate_logger_failures,
        variant_hparams,
    )
    from trainer.run import callback_nodes, weights_to_test
    from trainer.tasks import build_task

    choices = HydraConfig.get().runtime.choices
    output_dir = Path(cfg.paths.output_dir)
    with recorded_status(output_dir) as status:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        task = build_task(datamodule)
        status.update(task_record(task, cfg.test_ckpt))
        check_run(cfg, choices.loss, choices.data, datamodule.task)
        module = LossExperiment.from_config(cfg, datamodule, task)  # model, loss, optimizer
        preflight(module, datamodule)
        callbacks = [instantiate(node) for node in callback_nodes(cfg)]
        loggers = build_loggers(cfg.logger)
        tolerate_logger_failures(loggers, status.warn)
        # before fit: a killed or still running job shows its hyperparameters too
        hparams = variant_hparams(cfg, choices, HydraConfig.get().overrides.task)
        log_start(loggers, hparams, metric_tags(task), status.warn)
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        # the test loop resets what fit logged: take it first
        fit_metrics = final_metrics(trainer) | nonfinite_counts(callbacks)
        tested = weights_to_test(trainer.checkpoint_callback, cfg.test_ckpt)
        if not cfg.skip_test:  # search trials: the test split never guides a search
            trainer.test(module, datamodule=datamodule, ckpt_path=tested)
        metrics = fit_metrics | final_metrics(trainer)
        log_end(trainer.loggers, trainer.global_step, metrics, status.warn)
        stop_reason = first_stop_reason(callbacks)
        status.update(
            status="stopped" if stop_reason else "completed",
            stop_reason=stop_reason,
            metrics=metrics,
            selection=selection(trainer.checkpoint_callback, task, tested, fit_metrics),
        )
    log.info("run dir: %s", output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """The run's objective: the validation value of its ranking metric for the checkpoint it
    tests (or would test, with ``skip_test``), which searches maximise or minimise; None when
    the run failed."""
    try:
        train(cfg)
    except Exception as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # one failed job must not cost the sweep its other jobs: status.json holds the
            # error, and the comparison report (or the search) lists the failure
            log.exception("job failed; the sweep goes on")
            return None
        message = one_line(error)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(f"train.py: {message}")
    return objective(Path(cfg.paths.output_dir))


if __name__ == "__main__":
    if message := command_line_error(sys.argv[1:]):
        sys.exit(f"train.py: {message}")
    if page := help_page(sys.argv[1:]):  # Hydra's --help prints it too, a second later
        print(page)
        sys.exit(0)
    sys.argv[1:] = hydra_arguments(sys.argv[1:])  # dry_run=true -> hydra.sweeper.dry_run=true
    main()
