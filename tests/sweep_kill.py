"""A Hydra callback for the tests: the sweep's process dies at once (SIGKILL, as when its machine
is lost) when the job whose run dir is named ``subdir`` starts. With the basic launcher the jobs
run in the sweep's process, so what it leaves is what a killed sweep leaves: the jobs before
ended, this one's run dir holds its config only, and nothing after it ran."""

import os
import signal
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class KillAtJobStart(Callback):
    def __init__(self, subdir: str) -> None:
        self.subdir = subdir

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if Path(config.hydra.runtime.output_dir).name == self.subdir:
            os.kill(os.getpid(), signal.SIGKILL)
