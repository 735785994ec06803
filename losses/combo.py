"""``combo``: a weighted sum of other losses (Dice + BCE, GIoU + L1, ...), common practice.

The components are any ``Loss`` modules; Hydra instantiates them recursively from
``conf/loss/combo.yaml``, so ``loss.weights.dice=0.5`` or ``loss.components.dice.eps=0.1``
override from the command line.
"""

from collections.abc import Mapping

from torch import Tensor, nn

from losses.base import Loss
from losses.checks import describe

__all__ = ["Combo", "check_combo", "combo", "shared_tasks"]


def shared_tasks(components: Mapping[str, Loss]) -> tuple[str, ...]:
    """The tasks every component fits, in the first component's order."""
    first, *others = components.values()
    return tuple(t for t in first.tasks if all(t in other.tasks for other in others))


def check_combo(*, components: Mapping[str, Loss], weights: Mapping[str, float]) -> None:
    """The components (``Loss`` modules reducing to a scalar, sharing a task) and their weights
    (one non-negative float per component name)."""
    if not components:
        raise ValueError("combo: expected at least one component, got none")
    for name, component in components.items():
        if not isinstance(component, Loss):
            raise TypeError(
                f"combo: expected component {name!r} as a Loss module, "
                f"got {type(component).__name__}"
            )
        # a weighted sum of [N] and [N, 1, H, W] would broadcast silently
        if component.hyperparameters.get("reduction") == "none":
            raise ValueError(
                f"combo: expected component {name!r} with reduction 'mean' or 'sum', got 'none'"
            )
    if set(weights) != set(components):
        raise ValueError(
            f"combo: expected weights for exactly the components {sorted(components)}, "
            f"got weights for {sorted(weights)}"
        )
    for name, weight in weights.items():
        if weight < 0:
            raise ValueError(f"combo: expected weight of {name!r} >= 0.0, got {weight}")
    if not shared_tasks(components):
        listed = ", ".join(f"{name}: {tuple(c.tasks)}" for name, c in components.items())
        raise ValueError(f"combo: expected components sharing a task, got {listed}")


def _combine(
    input: Tensor, target: Tensor, components: Mapping[str, Loss], weights: Mapping[str, float]
) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted sum and each component's unweighted value (plus its own ``name/stat``)."""
    total = 0.0
    stats = {}
    for name, component in components.items():
        value, component_stats = component.with_stats(input, target)
        if value.ndim != 0:
            raise ValueError(
                f"combo: expected component {name!r} to return a scalar, got {describe(value)}"
            )
        total = total + weights[name] * value
        stats[name] = value.detach()
        stats.update({f"{name}/{key}": stat for key, stat in component_stats.items()})
    return total, stats


def combo(
    input: Tensor,
    target: Tensor,
    *,
    components: Mapping[str, Loss],
    weights: Mapping[str, float],
) -> Tensor:
    """``Σ_k weights[k] * components[k](input, target)``.

    >>> import torch
    >>> from losses.segmentation import BCEWithLogitsLoss, DiceLoss
    >>> x, y = torch.tensor([[2.0, -1.0, 0.5, -3.0]]), torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> parts = {"dice": DiceLoss(), "bce": BCEWithLogitsLoss()}
    >>> round(combo(x, y, components=parts, weights={"dice": 0.5, "bce": 1.0}).item(), 4)
    0.7734
    """
    check_combo(components=components, weights=weights)
    return _combine(input, target, components, weights)[0]


class Combo(Loss):
    """``loss=combo``: :func:`combo` of named component losses.

    ``components`` maps a name to a ``Loss`` (kept in an ``nn.ModuleDict``, so they move with the
    module and are saved in its state); ``weights`` maps the same names to non-negative floats,
    all 1.0 when None. ``tasks`` is the intersection of the components' tasks (in the first
    component's order); components sharing no task, or weights that do not match the components,
    raise (:func:`check_combo`). Every component must reduce to a scalar (``mean`` or ``sum``).
    ``with_stats`` logs each component's unweighted value under its name, and the components'
    own statistics as ``name/stat``.

    >>> import torch
    >>> from losses.segmentation import BCEWithLogitsLoss, DiceLoss
    >>> combo = Combo(
    ...     components={"dice": DiceLoss(), "bce": BCEWithLogitsLoss()},
    ...     weights={"dice": 0.5, "bce": 1.0},
    ... )
    >>> x, y = torch.tensor([[2.0, -1.0, 0.5, -3.0]]), torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> loss, stats = combo.with_stats(x, y)
    >>> round(loss.item(), 4), {k: round(v.item(), 4) for k, v in stats.items()}
    (0.7734, {'dice': 0.3154, 'bce': 0.6157})
    >>> combo.tasks
    ('segmentation',)
    """

    function = staticmethod(combo)
    check = staticmethod(check_combo)
    formula = "Σ_k weights[k] L_k(input, target) over the component losses L_k"
    reference = "its components'; a weighted sum of losses is common practice"

    def __init__(
        self, *, components: Mapping[str, Loss], weights: Mapping[str, float] | None = None
    ) -> None:
        # Hydra hands over DictConfigs; plain dicts keep the names and their order.
        components = dict(components)
        weights = {name: 1.0 for name in components} if weights is None else dict(weights)
        super().__init__(components=components, weights=weights)
        # the components are submodules, not plain hyperparameters: registered here, they move
        # with the module and are saved in its state
        self.components = nn.ModuleDict(self.hyperparameters.pop("components"))
        self.hyperparameters["weights"] = {name: float(weights[name]) for name in components}
        # an instance attribute: a combo's tasks are those its components share
        self.tasks = shared_tasks(components)

    def compute_with_stats(self, input: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return _combine(input, target, self.components, self.hyperparameters["weights"])

    def compute(self, input: Tensor, target: Tensor) -> Tensor:
        return self.compute_with_stats(input, target)[0]
