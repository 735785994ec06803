"""Draw losses and their gradients, computed by this project's own loss functions.

    .venv/bin/python scripts/plot_losses.py            # writes docs/losses_*.png

1. ``losses_binary.png``: one positive example (y = 1) as its logit goes from -6 to 6: BCE, focal
   at gamma 0/0.5/1/2/5 and balanced BCE; right, d loss / d logit. Focal's (1 - p)^gamma factor
   flattens the loss of well-classified examples (large logits): their gradient vanishes.
2. ``losses_dice_pixel.png``: an image of 100 pixels with one foreground pixel, every background
   pixel predicted at logit -4; the foreground pixel's logit varies. Mean BCE spreads its gradient
   over all 100 pixels, Dice concentrates it on the rare foreground.
3. ``losses_regression.png``: L1, MSE, smooth L1 (beta 1) and Huber (delta 1) against the
   residual, with their gradients: MSE's gradient grows with the residual, so outliers dominate.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from losses.focal import sigmoid_focal_loss
from losses.regression import huber, l1, mse, smooth_l1
from losses.segmentation import balanced_bce, bce, dice

OUT = Path(__file__).resolve().parent.parent / "docs"


def _curve(fn, xs: torch.Tensor) -> tuple[list[float], list[float]]:
    """Loss and d loss / dx at each x, one scalar evaluation each (x is a leaf per point)."""
    values, grads = [], []
    for x in xs:
        x = x.clone().requires_grad_(True)
        loss = fn(x)
        (grad,) = torch.autograd.grad(loss, x)
        values.append(float(loss.detach()))
        grads.append(float(grad))
    return values, grads


def _figure(title: str, xlabel: str, curves: dict, xs: torch.Tensor, path: Path, ylim=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, fn in curves.items():
        values, grads = _curve(fn, xs)
        left.plot(xs, values, label=label)
        right.plot(xs, grads, label=label)
    left.set(title=f"{title}: loss", xlabel=xlabel, ylabel="loss")
    right.set(title=f"{title}: gradient", xlabel=xlabel, ylabel="d loss / d " + xlabel.split()[0])
    if ylim:
        left.set_ylim(*ylim)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.axhline(0, color="black", lw=0.5)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(path)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    xs = torch.linspace(-6, 6, 241, dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64)

    binary = {"BCE": lambda x: bce(x, one)}
    for gamma in (0.5, 1.0, 2.0, 5.0):
        binary[f"focal gamma={gamma:g}"] = lambda x, g=gamma: sigmoid_focal_loss(
            x, one, gamma=g, alpha=None
        )
    binary["balanced BCE (beta=0.9)"] = lambda x: balanced_bce(x, one, beta=0.9)
    _figure(
        "positive example (y=1)", "logit x", binary, xs, OUT / "losses_binary.png", ylim=(0, 6.5)
    )

    background = torch.full((99,), -4.0, dtype=torch.float64)
    mask = torch.cat([torch.ones(1), torch.zeros(99)]).double().reshape(1, 1, 10, 10)

    def image(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.reshape(1), background]).reshape(1, 1, 10, 10)

    pixel = {
        "mean BCE over the image": lambda x: bce(image(x), mask),
        "Dice (eps=1)": lambda x: dice(image(x), mask, eps=1.0),
        "Dice (eps=0.01)": lambda x: dice(image(x), mask, eps=0.01),
    }
    _figure(
        "1 foreground pixel in 100",
        "logit x of the foreground pixel",
        pixel,
        xs,
        OUT / "losses_dice_pixel.png",
    )

    zero = torch.zeros((), dtype=torch.float64)
    regression = {
        "L1": lambda r: l1(r, zero),
        "MSE": lambda r: mse(r, zero),
        "smooth L1 (beta=1)": lambda r: smooth_l1(r, zero, beta=1.0),
        "Huber (delta=1)": lambda r: huber(r, zero, delta=1.0),
    }
    residuals = torch.linspace(-4, 4, 241, dtype=torch.float64)
    _figure(
        "regression",
        "residual r",
        regression,
        residuals,
        OUT / "losses_regression.png",
        ylim=(0, 8),
    )


if __name__ == "__main__":
    main()
