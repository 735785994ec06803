"""Train one model with one loss on one dataset, as the Hydra config says; test; log everything.

python train.py loss=focal
python train.py -m loss=focal loss.gamma=0,1,2,5 loss.alpha=0.25,0.5
tensorboard --logdir outputs
"""

import logging
import os
import re
import sys
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig

from trainer.cli import one_line, unknown_choice, unwritable_output
from trainer.config import instantiate_with_data, register_resolvers, weights_to_test
from trainer.module import LossExperiment
from trainer.preflight import check_run, preflight
from trainer.records import final_metrics, flat_hparams, log_final_hparams, recorded_status
from trainer.tasks import build_task

register_resolvers()
log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    choices = HydraConfig.get().runtime.choices
    output_dir = Path(cfg.paths.output_dir)
    with recorded_status(output_dir) as status:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        check_run(cfg, choices.loss, choices.data, datamodule.task)
        loss = instantiate_with_data(cfg.loss, datamodule.data_stats)
        model = instantiate_with_data(cfg.model, datamodule.model_inputs)
        module = LossExperiment(
            model,
            loss,
            build_task(datamodule),
            instantiate(cfg.optimizer),
            instantiate(cfg.scheduler),
            logit_scale=cfg.logit_scale,
        )
        preflight(module, datamodule)
        callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
        loggers = [instantiate(c) for c in cfg.logger.values() if c is not None]
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        metrics = final_metrics(trainer)  # the test loop resets what fit logged: take it first
        trainer.test(
            module, datamodule=datamodule, ckpt_path=weights_to_test(trainer, cfg.test_ckpt)
        )
        metrics |= final_metrics(trainer)
        log_final_hparams(trainer, flat_hparams(cfg, choices), metrics)
        stop_reason = next(
            (c.stop_reason for c in callbacks if getattr(c, "stop_reason", None)), None
        )
        status.update(
            status="stopped" if stop_reason else "completed",
            stop_reason=stop_reason,
            metrics=metrics,
        )
    log.info("run dir: %s", output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except Exception as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # one failed job must not cost the sweep its other jobs: status.json holds the
            # error, and the comparison report lists the failure
            log.exception("job failed; the sweep goes on")
            return
        message = one_line(error)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(f"train.py: {message}")


if __name__ == "__main__":
    # Hydra's override grammar reads `nan` as a float, so `debug=nan` would never select
    # conf/debug/nan.yaml: quote it before Hydra parses the command line.
    sys.argv = [re.sub(r"^([+~]?debug)=nan$", r"\1='nan'", arg) for arg in sys.argv]
    if message := unknown_choice(sys.argv[1:]) or unwritable_output(sys.argv[1:]):
        sys.exit(f"train.py: {message}")
    main()
