"""Tests of trainer/metrics/ and trainer/figures.py against independent references.

References: float64 formulas written here (rank-sum AUROC, step AP, binned ECE, brute-force
Dice per threshold), torchmetrics' own metrics where ours must agree with what is logged, and
pytorch-metric-learning's ``AccuracyCalculator`` for MAP@R.
"""

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from scipy.stats import rankdata
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
from torch.utils.tensorboard import SummaryWriter
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
)

from trainer.figures import (
    add_pr_curve,
    confusion_matrix_figure,
    regression_scatter_figure,
    reliability_figure,
)
from trainer.metrics import (
    BestThresholdDice,
    DicePerImage,
    MeanPredictorSquaredError,
    PixelAUROC,
    PixelAveragePrecision,
    PredictionSample,
    PriorCrossEntropy,
    ReliabilityBins,
    SoftmaxNLL,
    classification_curve_metrics,
    pixel_curve_thresholds,
    retrieval_scores,
    segmentation_curve_metrics,
    threshold_counts,
)

# float32 inputs, float64 references: sums over a few thousand float32 values agree to ~1e-6
FLOAT32_ATOL = 1e-5


def _classification_batch(seed: int, n: int = 600, c: int = 5, scale: float = 2.0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n,), generator=generator)
    logits = torch.randn(n, c, generator=generator) * scale
    logits[torch.arange(n), target] += 1.5  # informative but imperfect
    return logits, target


def _auroc_rank_sum(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney U / (P·N), ties counted 1/2 (average ranks)."""
    ranks = rankdata(scores)
    p, n = positive.sum(), (~positive).sum()
    return (ranks[positive].sum() - p * (p + 1) / 2) / (p * n)


def _average_precision_step(scores: np.ndarray, positive: np.ndarray) -> float:
    """Σ over distinct score values, high to low, of ΔRecall · precision (ties form one step)."""
    values = np.unique(scores)[::-1]
    tp = np.array([(positive & (scores >= v)).sum() for v in values], dtype=np.float64)
    predicted = np.array([(scores >= v).sum() for v in values], dtype=np.float64)
    recall_gain = np.diff(np.concatenate([[0.0], tp])) / positive.sum()
    return float((recall_gain * tp / predicted).sum())


def _ece_guo(probs: np.ndarray, target: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE over bins [k/B, (k+1)/B) (data here has no confidence of exactly 1)."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == target
    slot = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = slot == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return ece


# --- classification ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_curve_metrics_match_float64_references(seed):
    logits, target = _classification_batch(seed)
    # under-confident half, over-confident half: the per-bin gaps differ in sign, so the ECE
    # depends on the bin count (with one sign throughout it is |mean acc − mean conf| for any)
    logits[:300] *= 0.3
    logits[300:] *= 3.0
    probs = logits.double().softmax(dim=1)
    metrics = classification_curve_metrics(num_classes=5)
    for p, t in zip(probs.float().split(128), target.split(128), strict=True):
        metrics.update(p, t)
    got = metrics.compute()

    p64, t64 = probs.numpy(), target.numpy()
    auroc = np.mean([_auroc_rank_sum(p64[:, c], t64 == c) for c in range(5)])
    ap = np.mean([_average_precision_step(p64[:, c], t64 == c) for c in range(5)])
    assert float(got["auroc"]) == pytest.approx(auroc, abs=FLOAT32_ATOL)
    assert float(got["ap"]) == pytest.approx(ap, abs=FLOAT32_ATOL)
    assert float(got["ece"]) == pytest.approx(_ece_guo(p64, t64), abs=FLOAT32_ATOL)


def test_classification_logits_inside_unit_interval_are_misread_so_tasks_feed_probabilities():
    """Why the interface takes probabilities: torchmetrics applies softmax only when a batch has
    a value outside [0, 1], so logits that all lie inside are scored as probabilities."""
    logits, target = _classification_batch(0, scale=0.1)
    logits = (logits - logits.min()) / (logits.max() - logits.min())  # all in [0, 1]
    from_logits = MulticlassCalibrationError(5, n_bins=15, norm="l1")(logits, target)
    from_probs = MulticlassCalibrationError(5, n_bins=15, norm="l1")(logits.softmax(1), target)
    reference = _ece_guo(logits.double().softmax(1).numpy(), target.numpy())
    assert float(from_probs) == pytest.approx(reference, abs=FLOAT32_ATOL)
    assert abs(float(from_logits) - reference) > 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reliability_bins_ece_equals_torchmetrics_including_saturated_confidences(seed):
    logits, target = _classification_batch(seed)
    logits[:40, 0] = 200.0  # float32 softmax confidence exactly 1.0: torchmetrics' extra bin
    # correct at confidence 0.94: under-confident in the last bin while the saturated ones are
    # over-confident, so folding confidence 1.0 into the last bin would change the ECE
    logits[40:300] = 0.0
    logits[torch.arange(40, 300), target[40:300]] = 4.14
    probs = logits.softmax(dim=1)
    assert (probs.max(1).values == 1.0).sum() >= 40
    bins, reference = ReliabilityBins(), MulticlassCalibrationError(5, n_bins=15, norm="l1")
    for p, t in zip(probs.split(100), target.split(100), strict=True):
        bins.update(p, t)
        reference.update(p, t)
    assert float(bins.compute().ece) == pytest.approx(float(reference.compute()), abs=1e-6)


def test_reliability_bins_bars_match_float64_binning():
    logits, target = _classification_batch(3)
    probs = logits.softmax(dim=1)
    bins = ReliabilityBins(n_bins=15)
    bins.update(probs, target)
    got = bins.compute()

    confidence, prediction = probs.double().max(dim=1)
    correct = (prediction == target).double()
    slot = (confidence * 15).long().clamp_max(14)
    for b in range(15):
        in_bin = slot == b
        assert float(got.count[b]) == in_bin.sum()
        if in_bin.any():
            assert float(got.confidence[b]) == pytest.approx(
                float(confidence[in_bin].mean()), abs=1e-6
            )
            assert float(got.accuracy[b]) == pytest.approx(float(correct[in_bin].mean()), abs=1e-6)
    assert float(got.count.sum()) == len(target)
    gap = confidence.mean() - correct.mean()  # signed: mean confidence − accuracy
    assert float(got.conf_gap) == pytest.approx(float(gap), abs=1e-7)


def test_reliability_bins_rejects_wrong_shapes():
    with pytest.raises(
        ValueError,
        match=r"ReliabilityBins: expected probs \[N, C\] and target \[N\], got \[4\] and \[4\]",
    ):
        ReliabilityBins().update(torch.rand(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="ReliabilityBins: expected n_bins a positive int, got 0"):
        ReliabilityBins(n_bins=0)


def test_prior_cross_entropy_of_a_class_absent_from_training():
    """Prior 0: nothing while no target of it is seen (0·log 0 = 0), infinite once one is."""
    prior = PriorCrossEntropy([3, 0, 1])
    prior.update(torch.zeros(3), torch.tensor([0, 0, 2]))
    reference = -(2 * np.log(0.75) + np.log(0.25)) / 3
    assert float(prior.compute()) == pytest.approx(reference, rel=1e-6)
    prior.update(torch.zeros(1), torch.tensor([1]))
    assert float(prior.compute()) == float("inf")


@pytest.mark.parametrize("counts", [[5], [2, -1], [0, 0], [[1, 2], [3, 4]]])
def test_prior_cross_entropy_rejects_counts_without_a_prior(counts):
    with pytest.raises(ValueError, match="PriorCrossEntropy: expected class_counts, two or more"):
        PriorCrossEntropy(counts)


def test_prior_metrics_reject_targets_outside_the_classes_and_a_non_finite_mean():
    with pytest.raises(ValueError, match=r"PriorCrossEntropy: expected targets in 0..1, got 3"):
        PriorCrossEntropy([1, 1]).update(torch.zeros(2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="MeanPredictorSquaredError: expected a finite mean, got"):
        MeanPredictorSquaredError(float("nan"))


def test_softmax_nll_rejects_logits_of_another_shape():
    with pytest.raises(
        ValueError,
        match=r"SoftmaxNLL: expected logits \[N, C\] and target \[N\], got \[4\] and \[4\]",
    ):
        SoftmaxNLL().update(torch.zeros(4), torch.zeros(4, dtype=torch.long))


# --- segmentation ----------------------------------------------------------------------------


def test_dice_per_image_is_undefined_until_an_image_has_foreground():
    dice = DicePerImage()
    dice.update(torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3))  # every target empty
    assert torch.isnan(dice.compute())
    dice.update(torch.tensor([[[[1, 1, 0]]]]), torch.tensor([[[[0, 1, 0]]]]))
    assert float(dice.compute()) == pytest.approx(2 / 3)
    with pytest.raises(
        ValueError, match=r"DicePerImage: expected predicted and target masks of one shape"
    ):
        dice.update(torch.ones(2, 1, 3, 3), torch.ones(2, 3, 3))


def _pixel_batch(seed: int, shape=(6, 1, 24, 24), saturated_rows: int = 4):
    """Foreground probabilities loosely tied to the mask, with rows saturated at 1.0."""
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(shape, generator=generator) < 0.2).long()
    logits = torch.randn(shape, generator=generator) * 1.5 + 2.0 * target - 1.0
    logits[0, 0, :saturated_rows] = 40.0  # sigmoid == 1.0 in float32, as a confident model gives
    return logits.sigmoid(), target


def _binning_bounds(probs: np.ndarray, positive: np.ndarray, thresholds: np.ndarray):
    """The bounds stated in pixel_curve_thresholds, in float64: (AUROC bound, AP bound)."""
    slot = np.searchsorted(thresholds, probs, side="right")  # bin = thresholds passed
    p, n = positive.sum(), (~positive).sum()
    auroc_pairs, ap_bound = 0.0, 0.0
    for b in np.unique(slot):
        in_bin = slot == b
        pos_b, neg_b = (in_bin & positive).sum(), (in_bin & ~positive).sum()
        # exactly tied values are ties in the exact scores too: only distinct values count
        _, inverse, group_size = np.unique(probs[in_bin], return_inverse=True, return_counts=True)
        group_pos = np.bincount(inverse, weights=positive[in_bin], minlength=len(group_size))
        auroc_pairs += pos_b * neg_b - (group_pos * (group_size - group_pos)).sum()
        at_or_above = (slot >= b).sum()
        ap_bound += pos_b / p * (in_bin.sum() - group_size.min()) / at_or_above
    return 0.5 * auroc_pairs / (p * n), ap_bound


@pytest.mark.parametrize("seed", [0, 1])
def test_binned_pixel_ap_and_auroc_stay_within_the_stated_binning_bound(seed):
    probs, target = _pixel_batch(seed)
    metrics = segmentation_curve_metrics()
    for p, t in zip(probs.split(2), target.split(2), strict=True):
        metrics.update(p, t)
    got = metrics.compute()

    p64, positive = probs.double().flatten().numpy(), target.flatten().numpy() == 1
    auroc_bound, ap_bound = _binning_bounds(
        p64, positive, pixel_curve_thresholds().double().numpy()
    )
    exact_auroc, exact_ap = _auroc_rank_sum(p64, positive), _average_precision_step(p64, positive)
    assert 0 < auroc_bound < 0.01 and 0 < ap_bound < 0.05  # the bounds are informative here
    assert abs(float(got["pixel_auroc"]) - exact_auroc) <= auroc_bound + FLOAT32_ATOL
    assert abs(float(got["pixel_ap"]) - exact_ap) <= ap_bound + FLOAT32_ATOL


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(PixelAveragePrecision, BinaryAveragePrecision), (PixelAUROC, BinaryAUROC)],
)
def test_histogram_binned_curves_keep_torchmetrics_counts_and_values(ours, theirs):
    # torchmetrics' own binned update is the reference, on batches with pixels at exactly 0, 1
    # and on grid points (where >= must count them in their own bin), summed over batches
    thresholds = pixel_curve_thresholds()
    fast, plain = ours(thresholds=thresholds), theirs(thresholds=thresholds)
    for seed in range(3):
        probs, target = _pixel_batch(seed)
        probs.view(-1)[:50] = thresholds[torch.arange(50) * 4]
        probs.view(-1)[50:60] = 0.0
        fast.update(probs, target)
        plain.update(probs, target)
    assert torch.equal(fast.confmat, plain.confmat)
    assert float(fast.compute()) == float(plain.compute())


def test_histogram_binned_curves_refuse_logits_and_soft_targets():
    probs, target = _pixel_batch(0)
    with pytest.raises(ValueError, match="expected probabilities in \\[0, 1\\]"):
        PixelAUROC(thresholds=pixel_curve_thresholds()).update(probs.logit(), target)
    with pytest.raises(ValueError, match="expected a \\{0, 1\\} target"):
        PixelAUROC(thresholds=pixel_curve_thresholds()).update(probs, target * 0.5)


def test_threshold_above_one_keeps_saturated_pixels_in_the_auroc():
    """With the plain 200-point grid the pixels at exactly 1.0 lose their ROC segment."""
    probs, target = _pixel_batch(0, shape=(2, 1, 24, 24), saturated_rows=16)
    p64, positive = probs.double().flatten().numpy(), target.flatten().numpy() == 1
    auroc_bound, _ = _binning_bounds(p64, positive, pixel_curve_thresholds().double().numpy())
    exact = _auroc_rank_sum(p64, positive)
    plain = float(BinaryAUROC(thresholds=200)(probs, target))
    assert abs(plain - exact) > 10 * auroc_bound
    ours = float(segmentation_curve_metrics()(probs, target)["pixel_auroc"])
    assert abs(ours - exact) <= auroc_bound + FLOAT32_ATOL


def _brute_force_dice(probs: torch.Tensor, target: torch.Tensor, thresholds: torch.Tensor):
    p, fg = probs.double().flatten(), target.flatten() > 0.5
    dice, iou = [], []
    for t in thresholds.double():
        predicted = p >= t
        tp = float((predicted & fg).sum())
        fp = float((predicted & ~fg).sum())
        fn = float((~predicted & fg).sum())
        dice.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else 0.0)
    return np.array(dice), np.array(iou)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_threshold_dice_matches_brute_force(seed):
    probs, target = _pixel_batch(seed)
    metric = BestThresholdDice()
    for p, t in zip(probs.split(2), target.float().split(2), strict=True):
        metric.update(p, t)
    got = metric.compute()
    dice, iou = _brute_force_dice(probs, target, metric.thresholds)
    best = int(np.argmax(dice))
    assert float(got["dice@best"]) == pytest.approx(dice[best], abs=1e-6)
    assert float(got["iou@best"]) == pytest.approx(iou[best], abs=1e-6)
    assert float(got["threshold@best"]) == pytest.approx(best / 100, abs=1e-6)
    for threshold in (0.3, 0.5, float(got["threshold@best"])):
        at = metric.at_threshold(threshold)
        index = round(threshold * 100)
        assert float(at["dice"]) == pytest.approx(dice[index], abs=1e-6)
        assert float(at["iou"]) == pytest.approx(iou[index], abs=1e-6)


def test_best_threshold_dice_picks_a_threshold_away_from_half():
    """Probabilities shifted below 0.5 (a loss calibrated off 0.5): the best threshold moves."""
    generator = torch.Generator().manual_seed(5)
    target = (torch.rand(4000, generator=generator) < 0.3).float()
    probs = (0.25 + 0.1 * target + 0.05 * torch.randn(4000, generator=generator)).clamp(0, 1)
    metric = BestThresholdDice()
    metric.update(probs, target)
    got = metric.compute()
    assert 0.25 < float(got["threshold@best"]) < 0.35
    assert float(got["dice@best"]) > float(metric.at_threshold(0.5)["dice"]) + 0.5


def test_best_threshold_dice_rejects_off_grid_threshold_and_bad_shapes():
    metric = BestThresholdDice()
    with pytest.raises(
        ValueError,
        match=r"BestThresholdDice: threshold 0.123 is not on the grid of 101 thresholds linspace\(0, 1\)",
    ):
        metric.at_threshold(0.123)
    with pytest.raises(
        ValueError,
        match=r"threshold_counts: expected probs and target of one shape, got \[2, 1, 4, 4\] and \[2, 4, 4\]",
    ):
        metric.update(torch.rand(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(
        ValueError, match="BestThresholdDice: expected num_thresholds an int >= 2, got 1"
    ):
        BestThresholdDice(num_thresholds=1)


def test_add_pr_curve_writes_the_counts_to_the_pr_curves_plugin(tmp_path):
    probs, target = _pixel_batch(0)
    metric = BestThresholdDice()
    metric.update(probs, target)
    with SummaryWriter(str(tmp_path)) as writer:
        add_pr_curve(writer, "val/pr_curve", metric.counts(), step=3)
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()
    assert "val/pr_curve" in events.PluginTagToContent("pr_curves")
    (event,) = events.Tensors("val/pr_curve")
    assert event.step == 3
    tp, fp, tn, fn, precision, recall = make_ndarray(event.tensor_proto)
    p, fg = probs.double().flatten(), target.flatten() == 1
    for i in (0, 30, 60, 100):
        predicted = p >= i / 100
        assert tp[i] == (predicted & fg).sum() and fp[i] == (predicted & ~fg).sum()
        assert tn[i] == (~predicted & ~fg).sum() and fn[i] == (~predicted & fg).sum()
    assert precision[30] == pytest.approx(tp[30] / (tp[30] + fp[30]), rel=1e-6)
    assert recall[30] == pytest.approx(tp[30] / (tp[30] + fn[30]), rel=1e-6)


def test_add_pr_curve_rejects_grids_tensorboard_cannot_label(tmp_path):
    probs, target = torch.rand(50), torch.zeros(50)
    with SummaryWriter(str(tmp_path)) as writer:
        uneven = threshold_counts(probs, target, torch.tensor([0.0, 0.2, 1.0]))
        with pytest.raises(
            ValueError, match=r"add_pr_curve: expected thresholds linspace\(0, 1, 3\)"
        ):
            add_pr_curve(writer, "pr", uneven, step=0)
        long = threshold_counts(probs, target, torch.linspace(0, 1, 200))
        with pytest.raises(
            ValueError, match="add_pr_curve: TensorBoard keeps at most 127 thresholds, got 200"
        ):
            add_pr_curve(writer, "pr", long, step=0)


# --- retrieval -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_at_r_matches_pytorch_metric_learning(seed):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(80, 8, generator=generator)  # continuous: distance ties have p 0
    labels = torch.randint(0, 6, (80,), generator=generator)
    labels[-1] = 99  # a lone query: left out by both
    # our retrieval ranks by plain Euclidean distance; PML's LpDistance normalises by default
    calculator = AccuracyCalculator(
        include=("mean_average_precision_at_r", "precision_at_1"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False, p=2)),
    )
    reference = calculator.get_accuracy(
        embeddings.double(), labels, embeddings.double(), labels, ref_includes_query=True
    )
    scores = retrieval_scores(embeddings, labels)
    # float32 distances against PML's float64: same ranking, float32 sums of ~80 terms
    assert float(scores["map@r"]) == pytest.approx(
        reference["mean_average_precision_at_r"], abs=1e-6
    )
    assert float(scores["recall@1"]) == pytest.approx(reference["precision_at_1"], abs=1e-6)
    assert abs(float(scores["map@r"]) - float(scores["map"])) > 0.01  # map@r is not map


# --- regression sample -------------------------------------------------------------------------


def _stream(n: int = 10_000):
    preds = torch.arange(n, dtype=torch.float32)
    return preds, 3 * preds + 1  # the target identifies the pair it belongs to


def test_prediction_sample_is_bounded_made_of_real_pairs_and_spread_over_the_stream():
    preds, target = _stream()
    sample = PredictionSample(max_size=2000, seed=0)
    for p, t in zip(preds.split(333), target.split(333), strict=True):
        sample.update(p, t)
    got_preds, got_target = sample.compute()
    assert len(got_preds) == 2000 and len(torch.unique(got_preds)) == 2000
    torch.testing.assert_close(got_target, 3 * got_preds + 1, rtol=0, atol=0)
    # uniform over the stream: 200 expected per tenth, sd ~13; keeping the first or last
    # items (a broken reservoir) puts 0 or 2000 in a tenth
    per_tenth = torch.bincount((got_preds // 1000).long(), minlength=10)
    assert per_tenth.min() >= 150 and per_tenth.max() <= 250


def test_prediction_sample_replays_across_resets_and_runs_and_forward_equals_update():
    preds, target = _stream(3000)

    def run(seed: int, use_forward: bool = False):
        sample = PredictionSample(max_size=100, seed=seed)
        for p, t in zip(preds.split(256), target.split(256), strict=True):
            sample(p, t) if use_forward else sample.update(p, t)
        return sample.compute()[0]

    first = run(0)
    sample = PredictionSample(max_size=100, seed=0)
    for epoch in range(2):
        sample.reset()
        for p, t in zip(preds.split(256), target.split(256), strict=True):
            sample.update(p, t)
        torch.testing.assert_close(sample.compute()[0], first, msg=f"epoch {epoch}")
    torch.testing.assert_close(run(0, use_forward=True), first)
    assert not torch.equal(run(1), first)


def test_prediction_sample_rejects_mismatched_inputs():
    with pytest.raises(
        ValueError,
        match=r"PredictionSample: expected preds and target with one element count, got \[3\] and \[4\]",
    ):
        PredictionSample().update(torch.zeros(3), torch.zeros(4))
    with pytest.raises(
        ValueError, match="PredictionSample: expected max_size a positive int, got 0"
    ):
        PredictionSample(max_size=0)


# --- figures ---------------------------------------------------------------------------------


def test_confusion_matrix_figure_shows_every_cell_and_the_class_names(tmp_path):
    logits, target = _classification_batch(0)
    confusion = MulticlassConfusionMatrix(5, normalize="true")
    confusion.update(logits.softmax(1), target)
    matrix = confusion.compute()
    names = ["zero", "one", "two", "three", "four"]
    figure = confusion_matrix_figure(matrix, names)
    axes = figure.axes[0]
    expected = {f"{float(matrix[r, c]):.2f}": None for r in range(5) for c in range(5)}
    shown = [text.get_text() for text in axes.texts]
    assert len(shown) == 25 and set(shown) == set(expected)
    assert [t.get_text() for t in axes.get_yticklabels()] == names
    assert [t.get_text() for t in axes.get_xticklabels()] == names
    reference_rows = np.bincount(target * 5 + logits.argmax(1), minlength=25).reshape(5, 5)
    reference_rows = reference_rows / reference_rows.sum(1, keepdims=True)
    np.testing.assert_allclose(matrix.numpy(), reference_rows, atol=1e-6)
    with SummaryWriter(str(tmp_path)) as writer:
        writer.add_figure("val/confusion", figure, global_step=0)
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    (image,) = events.Images("val/confusion")
    assert image.width > 300 and image.height > 300


def test_reliability_and_scatter_figures_carry_their_numbers():
    logits, target = _classification_batch(1)
    bins = ReliabilityBins()
    bins.update(logits.softmax(1), target)
    reliability = bins.compute()
    figure = reliability_figure(reliability)
    assert f"ECE = {float(reliability.ece):.4f}" in figure.axes[0].get_title()
    heights = [bar.get_height() for bar in figure.axes[1].patches]
    assert heights == reliability.count.tolist()

    preds, target = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.5, 2.0, 3.0])
    figure = regression_scatter_figure(preds, target, mae=0.5, r2=0.25)
    assert figure.axes[0].get_title().startswith("MAE 0.5, R² 0.2500")
    np.testing.assert_array_equal(
        figure.axes[0].collections[0].get_offsets(), np.stack([target, preds], axis=1)
    )
    with pytest.raises(
        ValueError,
        match=r"regression_scatter_figure: expected preds and target of one shape \[N\], got \[3\] and \[2\]",
    ):
        regression_scatter_figure(preds, target[:2], mae=0.0, r2=0.0)
