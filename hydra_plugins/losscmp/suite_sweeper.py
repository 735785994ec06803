"""The suite sweeper: ``python train.py -m suite=seg_imbalance`` runs every loss variant of a suite.

Hydra's basic sweeper takes one cartesian product of the command line, so CE and a grid of focal
settings cannot share one command (``-m loss=ce,focal loss.gamma=0,2`` fails on ``ce``). A suite
config (``conf/suite/*.yaml``) lists variants, each a list of overrides with its own grid, plus
the seeds; this sweeper expands each variant's grid separately and launches the union through the
configured launcher (basic, joblib, submitit). Without ``suite=...`` it is the basic sweeper.
"""

from collections import OrderedDict

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override


class SuiteSweeper(BasicSweeper):
    def split_arguments(
        self, overrides: list[Override], max_batch_size: int | None
    ) -> list[list[list[str]]]:
        suite = self.config.get("suite") if self.config is not None else None
        if not suite or not any(o.get_key_element() == "suite" for o in overrides):
            return BasicSweeper.split_arguments(overrides, max_batch_size)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        given = {o.get_key_element() for o in overrides}
        seeds = [] if "seed" in given else [f"seed={','.join(str(s) for s in suite.seeds)}"]
        jobs = []
        for variant in suite.variants:
            # the command line wins over the suite: `trainer.max_epochs=1` shortens every job
            extra = [
                o
                for o in parser.parse_overrides([*variant, *seeds])
                if o.get_key_element() not in given
            ]
            by_key = OrderedDict((o.get_key_element(), o) for o in [*extra, *overrides])
            (variant_jobs,) = BasicSweeper.split_arguments(list(by_key.values()), None)
            jobs += variant_jobs
        size = max_batch_size if max_batch_size and max_batch_size > 0 else len(jobs)
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]
