"""The loss of the trivial predictor a task's plain loss is measured against: a constant prediction
taken from the training split alone (its class priors, its target mean), scored on the targets of
the split seen. A model whose loss is no lower than this does no better than ignoring its inputs."""

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


class PriorCrossEntropy(Metric):
    """Cross-entropy of the constant predictor ``p_c = n_c / Σ n`` (``class_counts``: the training
    split's count of each class) on the targets seen::

        prior_loss = (1/N) Σ_i −log p_{y_i} = −(1/N) Σ_c m_c log p_c

    with ``m_c`` the count of class c among the N targets. It is the cross-entropy (``loss=ce``)
    a model would get by ignoring its input, and, with ``class_counts = [background, foreground]``
    pixel counts, the binary cross-entropy ``−(y log p + (1−y) log(1−p))`` (``loss=bce``) of
    ``p`` = the foreground share. A class the training split never holds has ``p_c = 0``: the
    loss is infinite once a target of it is seen.

    ``update(preds, target)``: ``target`` class indices (or a {0, 1} mask) of any shape, every
    element one sample (or pixel); ``preds`` is not read (the prediction is constant). The
    state is the exact int64 count of each class; ``compute()`` is the float64 sum above, as
    float32.

    >>> prior = PriorCrossEntropy([3, 1])
    >>> prior.update(torch.zeros(4), torch.tensor([0, 0, 1, 1]))
    >>> round(float(prior.compute()), 4)  # (2·−log 0.75 + 2·−log 0.25) / 4
    0.837
    """

    full_state_update = False

    def __init__(self, class_counts: Sequence[int]) -> None:
        super().__init__()
        counts = torch.as_tensor(class_counts, dtype=torch.float64)
        if counts.ndim != 1 or len(counts) < 2 or (counts < 0).any() or counts.sum() <= 0:
            raise ValueError(
                "PriorCrossEntropy: expected class_counts, two or more non-negative counts with "
                f"a positive sum, got {list(class_counts)}"
            )
        self.num_classes = len(counts)
        self.register_buffer("prior", counts / counts.sum(), persistent=False)
        self.add_state(
            "seen", default=torch.zeros(self.num_classes, dtype=torch.int64), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        seen = torch.bincount(target.detach().flatten().long(), minlength=self.num_classes)
        if len(seen) > self.num_classes:
            raise ValueError(
                f"PriorCrossEntropy: expected targets in 0..{self.num_classes - 1}, "
                f"got {len(seen) - 1}"
            )
        self.seen += seen

    def compute(self) -> Tensor:
        # xlogy: a class neither seen nor in training (0·log 0) adds 0, not nan
        total = -torch.special.xlogy(self.seen.double(), self.prior).sum()
        return (total / self.seen.sum()).float()


class MeanPredictorSquaredError(Metric):
    """Mean squared error (``loss=mse``) of the constant prediction ``mean`` (the training
    targets' mean: the best constant under that loss on the training split) on the targets seen,
    over every element: ``(1/N) Σ_i (y_i − mean)²``.

    ``update(preds, target)``: ``target`` of any shape; ``preds`` is not read. Summed in float64
    about ``mean`` (not from ``Σy²`` and ``Σy``, which cancel when the mean is large).

    >>> prior = MeanPredictorSquaredError(1.0)
    >>> prior.update(torch.zeros(3), torch.tensor([0.0, 1.0, 5.0]))
    >>> float(prior.compute())
    5.666666507720947
    """

    full_state_update = False

    def __init__(self, mean: float) -> None:
        super().__init__()
        if not math.isfinite(mean):
            raise ValueError(f"MeanPredictorSquaredError: expected a finite mean, got {mean}")
        self.mean = float(mean)
        self.add_state(
            "squared_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.squared_sum += (target.detach().double() - self.mean).square().sum()
        self.count += target.numel()

    def compute(self) -> Tensor:
        return (self.squared_sum / self.count).float()
