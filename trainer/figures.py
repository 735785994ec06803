"""The task pictures for TensorBoard: confusion matrix, reliability diagram, regression scatter,
and the pixel PR curve.

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` built without pyplot
(no global figure registry, no backend switch: rendering goes through the Agg canvas), which
``SummaryWriter.add_figure`` renders and closes; the PR curve goes to TensorBoard's own
pr_curves plugin instead.
"""

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from trainer.metrics import Reliability, ThresholdCounts

MAX_ANNOTATED_CLASSES = 20


def confusion_matrix_figure(matrix: Tensor, class_names: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix: rows are the true class, each row sums to 1.

    ``matrix`` ``[C, C]`` as ``MulticlassConfusionMatrix(normalize="true")`` computes it. Up to
    ``MAX_ANNOTATED_CLASSES`` classes every cell shows its share with two decimals (white on dark
    cells); beyond that the numbers would not fit and only the colours remain.
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or len(class_names) != len(matrix):
        raise ValueError(
            "confusion_matrix_figure: expected a [C, C] matrix and C class names, "
            f"got {list(matrix.shape)} and {len(class_names)} names"
        )
    values = matrix.detach().float().cpu().numpy()
    c = len(values)
    side = min(max(4.0, 0.6 * c + 2.0), 14.0)  # inches; capped so many classes stay loggable
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    ticks = range(c)
    axes.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    axes.set_yticks(ticks, labels=list(class_names))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title("confusion matrix (rows normalised)")
    font = 9 if c <= 10 else 7
    for row in range(c if c <= MAX_ANNOTATED_CLASSES else 0):
        for col in range(c):
            value = values[row, col]
            colour = "white" if value > 0.5 else "black"
            axes.text(col, row, f"{value:.2f}", ha="center", va="center", color=colour, size=font)
    return figure


def reliability_figure(reliability: Reliability) -> Figure:
    """Reliability diagram (Guo et al. 2017): per-bin accuracy against confidence, and the diagonal.

    Blue bars span their confidence bin and reach the bin's accuracy; the hatched red part runs
    from there to the bin's mean confidence, the gap that the ECE in the title weighs by bin
    count. The lower panel shows those counts (log scale: confident bins usually hold most).
    """
    n_bins = len(reliability.count)
    edges = torch.linspace(0, 1, n_bins + 1)
    left, width = edges[:-1].numpy(), 1.0 / n_bins
    accuracy = reliability.accuracy.detach().cpu().numpy()
    confidence = reliability.confidence.detach().cpu().numpy()
    count = reliability.count.detach().cpu().numpy()
    filled = count > 0

    figure = Figure(figsize=(5.5, 6.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.bar(
        left[filled], accuracy[filled], width=width, align="edge", color="tab:blue",
        edgecolor="black", label="accuracy",
    )  # fmt: skip
    top.bar(
        left[filled], confidence[filled] - accuracy[filled], bottom=accuracy[filled], width=width,
        align="edge", color="tab:red", alpha=0.3, edgecolor="tab:red", hatch="//",
        label="gap to mean confidence",
    )  # fmt: skip
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"reliability, ECE = {float(reliability.ece):.4f} ({n_bins} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(left, count, width=width, align="edge", color="tab:grey", edgecolor="black")
    if filled.any():
        bottom.set_yscale("log")
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("samples")
    return figure


def regression_scatter_figure(preds: Tensor, target: Tensor, mae: float, r2: float) -> Figure:
    """Predicted against target values with the ``y = x`` diagonal.

    ``preds``/``target`` are a bounded sample (:class:`trainer.metrics.PredictionSample`);
    ``mae`` and ``r2`` are the split's full values (from ``MeanAbsoluteError``/``R2Score``), put
    in the title so the picture and the logged scalars agree.
    """
    if preds.shape != target.shape or preds.ndim != 1:
        raise ValueError(
            "regression_scatter_figure: expected preds and target of one shape [N], "
            f"got {list(preds.shape)} and {list(target.shape)}"
        )
    x = target.detach().float().cpu().numpy()
    y = preds.detach().float().cpu().numpy()
    figure = Figure(figsize=(5.0, 5.0), layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(x, y, s=6, alpha=0.4, color="tab:blue", edgecolors="none", label="sample")
    if len(x):
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        axes.plot([low, high], [low, high], linestyle="--", color="grey", label="y = x")
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_xlabel("target")
    axes.set_ylabel("prediction")
    axes.set_title(f"MAE {mae:.4g}, R² {r2:.4f} (whole split)\n{len(x)} sampled pairs shown")
    axes.legend(loc="upper left", fontsize=8)
    return figure


def add_pr_curve(writer: SummaryWriter, tag: str, counts: ThresholdCounts, step: int) -> None:
    """Write a TensorBoard PR curve (pr_curves plugin) from binned counts: those of
    :meth:`trainer.metrics.BestThresholdDice.counts`, or :func:`trainer.metrics.threshold_counts`
    of a sample.

    Counts, not the split's pixels, so memory stays bounded. TensorBoard labels point ``i`` with
    threshold ``i / (T − 1)`` and keeps at most 127 points, so the grid must be
    ``linspace(0, 1, T)`` with ``T <= 127``.
    """
    t = len(counts.thresholds)
    expected = torch.linspace(0, 1, t, device=counts.thresholds.device)
    if t > 127:
        raise ValueError(f"add_pr_curve: TensorBoard keeps at most 127 thresholds, got {t}")
    if not torch.allclose(counts.thresholds.float(), expected):
        raise ValueError(
            f"add_pr_curve: expected thresholds linspace(0, 1, {t}), got {counts.thresholds}"
        )
    tp, fp, fn, tn = (c.detach().double().cpu() for c in counts[1:])
    writer.add_pr_curve_raw(
        tag,
        tp.numpy(),
        fp.numpy(),
        tn.numpy(),
        fn.numpy(),
        (tp / (tp + fp).clamp_min(1)).numpy(),
        (tp / (tp + fn).clamp_min(1)).numpy(),
        global_step=step,
        num_thresholds=t,
    )
