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
from trainer.preemption import Preempted, hand_over
from trainer.search.trials import objective

register_resolvers()
log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """The run protocol (``trainer.run.train``) for the job Hydra composed."""
    # the training runtime (torch, Lightning) is imported where a job runs: the command line's
    # checks, --help and dry runs answer without it
    from trainer import run

    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    return run.train(cfg, hydra_cfg.runtime.choices, hydra_cfg.overrides.task, in_sweep)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """The run's objective: the validation value of its ranking metric for the checkpoint it
    tests (or would test, with ``skip_test``), which searches maximise or minimise; None when
    the run failed."""
    try:
        train(cfg)
    except Preempted as stop:
        # status.json says preempted, the checkpoint is saved: the signal goes on to whoever
        # requeues the job (submitit, SLURM), and the process ends; a sweep in this process ends
        # with it (its other jobs would be preempted too)
        hand_over(stop)
        sys.exit(f"train.py: {stop}; continue with: python train.py resume={cfg.paths.output_dir}")
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
