"""Hypothesis strategies the task examples share (``tests/task_examples/``): seeded torch
generators and float64 logits at scales up to far past float32's saturation."""

import torch
from hypothesis import strategies as st
from torch import Tensor

# logit scales the fuzz inputs are drawn at: from a fresh model's to far past float32's saturation
# of sigmoid and softmax (|x| > ~17 or ~88)
SCALES = (1.0, 10.0, 100.0, 1e4)


def generators() -> st.SearchStrategy[torch.Generator]:
    """Torch generators seeded from a drawn integer: tensors a failing example replays exactly."""
    return st.integers(0, 2**32 - 1).map(lambda seed: torch.Generator().manual_seed(seed))


@st.composite
def logits(draw: st.DrawFn, shape: tuple[int, ...]) -> Tensor:
    """Float64 normal values times a scale drawn from :data:`SCALES`; on a drawn flag saturated:
    every value at ±scale."""
    scale = draw(st.sampled_from(SCALES))
    x = torch.randn(shape, generator=draw(generators()), dtype=torch.float64) * scale
    return x.sign() * scale if draw(st.booleans()) else x
