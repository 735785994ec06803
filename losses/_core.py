"""The loss contract: the base module, the one reduction helper and the input checks.

Conventions: models emit logits, a loss applies its activation itself in the stable form,
``reduction`` is ``"mean" | "sum" | "none"``, every loss runs in float32 even under bf16/fp16
autocast, hyperparameters are keyword-only and checked by one ``check_*`` function per loss
(shared by the pure function and its module), and a wrong input raises ``TypeError``/``ValueError``
naming the loss, the expected and the received form.

When values are checked: dtypes and shapes are checked on every call. Checks of tensor values
(class indices in range, masks in [0, 1], boxes not inverted) read values back to the host, so
they run only where that costs no per-step device sync: on CPU tensors, and on tensors on any
device inside ``with value_checks():``, which the preflight wraps around the first batches of a
run on its own device. They never run while ``torch.compile`` traces. So a promised value error
holds on CPU and in the preflight, not on every accelerator training step.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "REDUCTIONS",
    "Loss",
    "check_binary_target",
    "check_class_target",
    "check_class_values",
    "check_float",
    "check_range",
    "check_reduction",
    "check_same_shape",
    "describe",
    "reduce",
    "value_checks",
    "values_checkable",
]

REDUCTIONS = ("mean", "sum", "none")

# Set by ``value_checks``; a ContextVar so that nesting and threads each see their own setting.
_VALUE_CHECKS_FORCED: ContextVar[bool] = ContextVar("value_checks_forced", default=False)


def describe(tensor: Tensor) -> str:
    """``float32 [8, 10]``: how error messages show a tensor that was received."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    return f"{dtype} [{', '.join(str(s) for s in tensor.shape)}]"


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


def check_range(
    name: str,
    key: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` unless ``low <= value <= high`` (bounds optional, open when asked).

    >>> check_range("focal", "gamma", -1.0, low=0.0)
    Traceback (most recent call last):
    ...
    ValueError: focal: expected gamma >= 0.0, got -1.0
    """
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        parts = []
        if low is not None:
            parts.append(f"{key} {'>' if low_open else '>='} {low}")
        if high is not None:
            parts.append(f"{key} {'<' if high_open else '<='} {high}")
        raise ValueError(f"{name}: expected {' and '.join(parts)}, got {value}")


def check_float(name: str, role: str, tensor: Tensor) -> None:
    if not tensor.is_floating_point():
        raise TypeError(f"{name}: expected {role} as a floating tensor, got {describe(tensor)}")


def check_same_shape(name: str, input: Tensor, target: Tensor, what: str = "target") -> None:
    if input.shape != target.shape:
        raise ValueError(
            f"{name}: expected {what} of the same shape as the input {describe(input)}, "
            f"got {describe(target)}"
        )


@contextmanager
def value_checks() -> Iterator[None]:
    """Check tensor values on every device inside this block (re-entrant); see the module doc.

    >>> x = torch.tensor([2.0])
    >>> values_checkable(x.to("meta"))
    False
    >>> with value_checks():
    ...     values_checkable(x.to("meta"))
    True
    """
    token = _VALUE_CHECKS_FORCED.set(True)
    try:
        yield
    finally:
        _VALUE_CHECKS_FORCED.reset(token)


def values_checkable(tensor: Tensor) -> bool:
    """Whether value checks (a host read) run on ``tensor``: on CPU, or on any device inside
    :func:`value_checks`; never while ``torch.compile`` traces.

    Outside :func:`value_checks` an accelerator would stall on the read every step.
    """
    if torch.compiler.is_compiling():
        return False
    return _on_cpu(tensor) or _VALUE_CHECKS_FORCED.get()


def _on_cpu(tensor: Tensor) -> bool:
    # the device test on its own, so that a test can stand a CPU tensor in for an accelerator's
    return tensor.device.type == "cpu"


def check_class_target(name: str, logits: Tensor, target: Tensor) -> None:
    """Logits ``[N, C]`` (floating) and int64 class indices ``[N]``."""
    if logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(f"{name}: expected logits as floating [N, C], got {describe(logits)}")
    if target.dtype != torch.int64 or target.shape != logits.shape[:1]:
        raise TypeError(
            f"{name}: expected target int64 class indices of shape [{logits.shape[0]}], "
            f"got {describe(target)}"
        )


def check_class_values(
    name: str, target: Tensor, num_classes: int, ignore_index: int | None = None
) -> None:
    """Class indices in ``[0, num_classes)`` (``ignore_index`` aside), where values are checked."""
    if not values_checkable(target) or target.numel() == 0:
        return
    valid = target if ignore_index is None else target[target != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        raise ValueError(
            f"{name}: expected class indices in [0, {num_classes}), "
            f"got values in [{int(valid.min())}, {int(valid.max())}]"
        )


def check_binary_target(name: str, logits: Tensor, target: Tensor) -> None:
    """Logits and a float {0, 1} (or soft [0, 1]) mask of the same shape, e.g. ``[N, 1, H, W]``;
    the values in [0, 1] where values are checked."""
    check_float(name, "logits", logits)
    if not target.is_floating_point():
        raise TypeError(
            f"{name}: expected target as a float mask of shape {list(logits.shape)}, "
            f"got {describe(target)}"
        )
    check_same_shape(name, logits, target)
    if values_checkable(target) and target.numel() and (target.min() < 0 or target.max() > 1):
        raise ValueError(
            f"{name}: expected target values in [0, 1], "
            f"got values in [{float(target.min())}, {float(target.max())}]"
        )


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
