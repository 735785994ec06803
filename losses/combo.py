"""``combo``: a weighted sum of other losses (Dice + BCE, GIoU + L1, ...), common practice.

The components are any ``Loss`` modules; Hydra instantiates them recursively from
``conf/loss/combo.yaml``, so ``loss.weights.dice=0.5`` or ``loss.components.dice.eps=0.1``
override from the command line.
"""

from collections.abc import Mapping

from torch import Tensor, nn

from losses._core import Loss, describe


class Combo(Loss):
    """``Σ_k weights[k] * components[k](input, target)``.

    ``components`` maps a name to a ``Loss`` (kept in an ``nn.ModuleDict``); ``weights`` maps
    the same names to non-negative floats, all 1.0 when None. ``tasks`` is the intersection of
    the components' tasks (in the first component's order); components sharing no task, or
    weights that do not match the components, raise. Every component must reduce to a scalar
    (``mean`` or ``sum``), since a weighted sum of ``[N]`` and ``[N, 1, H, W]`` would broadcast
    silently. ``with_stats`` logs each component's unweighted value under its name, and the
    components' own statistics as ``name/stat``.

    >>> import torch
    >>> from losses.segmentation import BCELoss, DiceLoss
    >>> combo = Combo({"dice": DiceLoss(), "bce": BCELoss()}, weights={"dice": 0.5, "bce": 1.0})
    >>> x, y = torch.tensor([[2.0, -1.0, 0.5, -3.0]]), torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> loss, stats = combo.with_stats(x, y)
    >>> round(loss.item(), 4), {k: round(v.item(), 4) for k, v in stats.items()}
    (0.7734, {'dice': 0.3154, 'bce': 0.6157})
    >>> combo.tasks
    ('segmentation',)
    """

    def __init__(
        self, components: Mapping[str, Loss], weights: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        # Hydra hands over DictConfigs; plain dicts keep the names and their order.
        components = dict(components)
        if not components:
            raise ValueError("combo: expected at least one component, got none")
        for name, component in components.items():
            if not isinstance(component, Loss):
                raise TypeError(
                    f"combo: expected component {name!r} as a Loss module, "
                    f"got {type(component).__name__}"
                )
            if getattr(component, "reduction", None) == "none":
                raise ValueError(
                    f"combo: expected component {name!r} with reduction 'mean' or 'sum', got 'none'"
                )
        weights = {name: 1.0 for name in components} if weights is None else dict(weights)
        if set(weights) != set(components):
            raise ValueError(
                f"combo: expected weights for exactly the components {sorted(components)}, "
                f"got weights for {sorted(weights)}"
            )
        for name, weight in weights.items():
            if weight < 0:
                raise ValueError(f"combo: expected weight of {name!r} >= 0.0, got {weight}")
        first, *others = components.values()
        tasks = tuple(t for t in first.tasks if all(t in other.tasks for other in others))
        if not tasks:
            listed = ", ".join(f"{name}: {tuple(c.tasks)}" for name, c in components.items())
            raise ValueError(f"combo: expected components sharing a task, got {listed}")
        self.tasks = tasks
        self.components = nn.ModuleDict(components)
        self.weights = {name: float(weights[name]) for name in components}

    def compute_with_stats(self, input: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        total = 0.0
        stats = {}
        for name, component in self.components.items():
            value, component_stats = component.with_stats(input, target)
            if value.ndim != 0:
                raise ValueError(
                    f"combo: expected component {name!r} to return a scalar, got {describe(value)}"
                )
            total = total + self.weights[name] * value
            stats[name] = value.detach()
            stats.update({f"{name}/{key}": stat for key, stat in component_stats.items()})
        return total, stats
