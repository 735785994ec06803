"""Input checks shared by the losses and the datasets: how a received tensor is described in an
error message, range and shape checks, and when tensor values are checked.

When values are checked: dtypes and shapes are checked on every call. Checks of tensor values
(class indices in range, masks in [0, 1], boxes not inverted) read values back to the host, so
they run only where that costs no per-step device sync: on CPU tensors, and on tensors on any
device inside ``with value_checks():``, which the preflight wraps around the first batches of a
run on its own device. They never run while ``torch.compile`` traces. So a promised value error
holds on CPU and in the preflight, not on every accelerator training step.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

# Set by ``value_checks``; a ContextVar so that nesting and threads each see their own setting.
_VALUE_CHECKS_FORCED: ContextVar[bool] = ContextVar("value_checks_forced", default=False)


def describe(tensor: Tensor) -> str:
    """``float32 [8, 10]``: how error messages show a tensor that was received."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    return f"{dtype} [{', '.join(str(s) for s in tensor.shape)}]"


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
