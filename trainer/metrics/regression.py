"""A bounded sample of predictions and targets, for the regression scatter."""

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric


class PredictionSample(Metric):
    """A uniform sample of at most ``max_size`` (prediction, target) pairs of the split.

    Bottom-k sampling (Cohen and Kaplan 2007, "Summarizing Data using Bottom-k Sketches"): every
    pair gets a uniform random key and the ``max_size`` smallest keys are kept, so the sample is
    uniform over everything seen, and merging processes is a concatenation then the same cut.
    Keys come from a generator seeded by ``(seed, process rank, pairs seen so far)``: the same
    split in the same order gives the same sample every epoch and every run.

    ``update(preds, target)``: any shapes with one element count (flattened). ``compute()`` ->
    ``(preds, target)``, each ``[min(max_size, seen)]`` float32.

    >>> sample = PredictionSample(max_size=3, seed=0)
    >>> sample.update(torch.arange(10.0), torch.arange(10.0) * 2)
    >>> preds, target = sample.compute()
    >>> len(preds), bool((target == 2 * preds).all())
    (3, True)
    """

    # forward() must draw keys from the running count, not from a count reset for the batch
    full_state_update = True

    def __init__(self, max_size: int = 2000, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(max_size, int) or max_size < 1:
            raise ValueError(
                f"PredictionSample: expected max_size a positive int, got {max_size!r}"
            )
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"PredictionSample: expected seed a non-negative int, got {seed!r}")
        self.max_size, self.seed = max_size, seed
        self.add_state("keys", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="cat")
        self.add_state("preds", default=torch.zeros(0), dist_reduce_fx="cat")
        self.add_state("target", default=torch.zeros(0), dist_reduce_fx="cat")
        self.add_state("seen", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.numel() != target.numel():
            raise ValueError(
                "PredictionSample: expected preds and target with one element count, "
                f"got {list(preds.shape)} and {list(target.shape)}"
            )
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        # int(self.seen) waits for the device once per batch: fine at regression's sizes
        entropy = np.random.SeedSequence([self.seed, rank, int(self.seen)])
        generator = torch.Generator().manual_seed(int(entropy.generate_state(1, np.uint64)[0]))
        keys = torch.rand(preds.numel(), generator=generator, dtype=torch.float64)
        self.keys = torch.cat([self.keys, keys.to(self.keys.device)])
        self.preds = torch.cat([self.preds, preds.detach().float().flatten()])
        self.target = torch.cat([self.target, target.detach().float().flatten()])
        self.seen += preds.numel()
        self._keep_smallest_keys()

    def _keep_smallest_keys(self) -> None:
        if len(self.keys) > self.max_size:
            kept = self.keys.topk(self.max_size, largest=False).indices
            self.keys, self.preds, self.target = (
                self.keys[kept],
                self.preds[kept],
                self.target[kept],
            )

    def compute(self) -> tuple[Tensor, Tensor]:
        self._keep_smallest_keys()  # after a cross-process concatenation
        order = self.keys.argsort()
        return self.preds[order], self.target[order]
