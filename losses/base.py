"""The loss contract: the base module every loss derives from and the one reduction helper.

Conventions: models emit logits, a loss applies its activation itself in the stable form,
``reduction`` is ``"mean" | "sum" | "none"``, every loss runs in float32 even under bf16/fp16
autocast, hyperparameters are keyword-only and checked by one ``check_*`` function per loss
(shared by the pure function and its module), and a wrong input raises ``TypeError``/``ValueError``
naming the loss, the expected and the received form (the input checks live in
:mod:`losses.checks`).
"""

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

REDUCTIONS = ("mean", "sum", "none")


def reduce(loss: Tensor, reduction: str, denominator: Tensor | float | None = None) -> Tensor:
    """Reduce an element-wise loss.

    ``mean`` divides the sum by ``denominator`` when given (weighted losses divide by the sum of
    the weights, PyTorch's convention), else by the number of elements.

    >>> reduce(torch.tensor([1.0, 2.0, 3.0]), "mean")
    tensor(2.)
    >>> reduce(torch.tensor([1.0, 2.0, 3.0]), "mean", denominator=2.0)
    tensor(3.)
    >>> reduce(torch.tensor([1.0, 2.0]), "none")
    tensor([1., 2.])
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if denominator is None else loss.sum() / denominator
    raise ValueError(f"expected reduction in {REDUCTIONS}, got {reduction!r}")


def check_reduction(name: str, reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is one of :data:`REDUCTIONS`.

    >>> check_reduction("focal", "average")
    Traceback (most recent call last):
    ...
    ValueError: focal: expected reduction in ('mean', 'sum', 'none'), got 'average'
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: expected reduction in {REDUCTIONS}, got {reduction!r}")


def _to_float32(tensor: Tensor) -> Tensor:
    # float64 stays float64 (gradcheck); half precision goes up, since sums over large masks
    # overflow fp16 and log/exp lose too much in bf16.
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class Loss(nn.Module):
    """Base of every loss module: a thin wrapper around a pure function.

    A subclass sets ``function`` (the pure ``function(input, target, **hyperparameters)``),
    ``check`` (the one validation of those keyword hyperparameters, which ``function`` calls too)
    and the ``tasks`` whose outputs it consumes, and passes its keyword hyperparameters to
    ``super().__init__``, which checks them and keeps them as plain Python values. ``compute``
    calls ``function`` with them; a module holding tensors (class weights) registers them as
    buffers and overrides ``compute``. ``forward`` runs ``compute`` in float32 with autocast off;
    ``with_stats`` returns the loss plus named diagnostics to log (components of a combo, the
    share of active triplets), none by default. Nothing is stored in ``forward``. ``formula`` and
    ``reference`` say what the loss computes and where it comes from, for the catalogue that
    ``scripts/loss_catalogue.py`` writes to ``docs/losses.md``.
    """

    tasks: ClassVar[tuple[str, ...]] = ()
    # False only for forms kept to demonstrate NaN incidents (bce_manual): the fuzz tests expect
    # every other loss to stay finite at any input
    stable: ClassVar[bool] = True
    function: ClassVar[Callable[..., Tensor]]
    check: ClassVar[Callable[..., None]]
    # plain text, one line each: the loss as a formula, true to its docstrings (hyperparameters
    # by their names), and the paper it comes from or, for a textbook loss without one, the
    # implementation it equals
    formula: ClassVar[str] = ""
    reference: ClassVar[str] = ""

    def __init__(self, **hyperparameters: Any) -> None:
        super().__init__()
        type(self).check(**hyperparameters)
        self.hyperparameters = hyperparameters

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return self.with_stats(input, target)[0]

    def with_stats(self, input: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.autocast(input.device.type, enabled=False):
            return self.compute_with_stats(_to_float32(input), _to_float32(target))

    def compute_with_stats(self, input: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.compute(input, target), {}

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return type(self).function(input, target, **self.hyperparameters)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.hyperparameters.items())
