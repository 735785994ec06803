"""The task classes: the registry and ``build_task``, registration checks, and each task's
metrics and scalars on its reference batch against float64 formulas written here (scikit-learn
for AUROC and AP)."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from sklearn.metrics import average_precision_score, roc_auc_score
from task_examples import DATA_TASKS, per_item_shapes
from torch import Tensor

from datasets.regression import RegressionDataModule
from datasets.segmentation import SegImbalancedDataModule
from trainer.config import instantiate_with_data
from trainer.metrics import pixel_curve_thresholds
from trainer.tasks import TASKS, Task, build_task, register
from trainer.tasks.base import MODES
from trainer.tasks.classification import Classification
from trainer.tasks.segmentation import Segmentation

CONF = Path(__file__).resolve().parent.parent / "conf"


def _scalars(task: Task, outputs: Tensor, target: Tensor) -> dict[str, float]:
    metrics = task.metrics()
    task.update(metrics, outputs, target)
    return {k: float(v) for k, v in task.scalars(metrics.compute()).items()}


def test_every_task_of_the_data_configs_is_registered_with_a_ranking_metric():
    assert set(DATA_TASKS.values()) == set(TASKS)
    assert all(TASKS[name].name == name for name in TASKS)
    assert all(TASKS[name].monitor and TASKS[name].mode in MODES for name in TASKS)


def test_build_task_builds_the_datamodules_task():
    datamodule = SimpleNamespace(
        task="classification",
        num_classes=3,
        class_names=["a", "b c", "d/e"],
        data_stats={"class_counts": [5, 9, 2]},
    )
    task = build_task(datamodule)
    assert isinstance(task, Classification)
    assert (task.num_classes, task.class_names) == (3, ["a", "b_c", "d-e"])
    assert (task.class_counts, task.tail_classes) == ([5, 9, 2], [2])
    pixels = SimpleNamespace(task="segmentation", data_stats={"class_counts": [90, 10]})
    segmentation = build_task(pixels)
    assert isinstance(segmentation, Segmentation) and segmentation.class_counts == [90, 10]


def test_an_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match=r"no task class for task 'ranking'; known: \['boxes', "):
        build_task(SimpleNamespace(task="ranking"))


def test_class_names_and_counts_must_match_the_class_count():
    with pytest.raises(ValueError, match="classification: expected 3 class names, got 2"):
        Classification(3, ["a", "b"], [1, 1, 1])
    with pytest.raises(ValueError, match="classification: expected 3 class counts, got 4"):
        Classification(3, ["a", "b", "c"], [1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"segmentation: expected class_counts \[background, fo"):
        Segmentation([1, 2, 3])


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"name": "", "monitor": "x"}, "expected a name and a monitor metric"),
        ({"name": "t", "monitor": ""}, "expected a name and a monitor metric"),
        (
            {"name": "t", "monitor": "x", "mode": "up"},
            r"t: expected mode in \('max', 'min'\), got 'up'",
        ),
        ({"name": "boxes", "monitor": "x"}, "boxes: the name is taken by Boxes"),
    ],
)
def test_register_rejects_a_malformed_or_taken_task(attributes: dict, message: str):
    before = dict(TASKS)
    with pytest.raises(ValueError, match=message):
        register(type("Malformed", (Task,), attributes))
    assert before == TASKS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_ranking_metric_is_among_the_scalars(name: str):
    task = TASKS[name].example()
    scalars = _scalars(task, *task.reference_batch(seed=0))
    assert task.monitor in scalars, sorted(scalars)
    assert all(math.isfinite(v) for v in scalars.values()), scalars


def test_classification_scalars_match_the_formulas():
    task = Classification.example()
    outputs, target = task.reference_batch(seed=0)
    scalars = _scalars(task, outputs, target)
    predicted = outputs.double().argmax(1)
    recall = [float((predicted[target == c] == c).double().mean()) for c in range(task.num_classes)]
    assert scalars["acc"] == pytest.approx(float((predicted == target).double().mean()), abs=1e-6)
    assert scalars["balanced_acc"] == pytest.approx(sum(recall) / len(recall), abs=1e-6)
    assert [scalars[f"recall/class{c}"] for c in range(task.num_classes)] == pytest.approx(recall)
    assert scalars["min_recall"] == pytest.approx(min(recall))


def test_segmentation_counts_positive_logits_as_foreground():
    task = Segmentation.example()
    outputs, target = task.reference_batch(seed=0)
    predicted = outputs.double() > 0
    truth = target.bool()
    tp = float((predicted & truth).sum())
    fp, fn = float((predicted & ~truth).sum()), float((~predicted & truth).sum())
    scalars = _scalars(task, outputs, target)
    assert scalars["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    assert scalars["iou"] == pytest.approx(tp / (tp + fp + fn), abs=1e-6)


def test_regression_scalars_match_the_formulas():
    task = TASKS["regression"].example()
    outputs, target = task.reference_batch(seed=0)
    error = outputs.double() - target.double()
    scalars = _scalars(task, outputs, target)
    assert scalars["mae"] == pytest.approx(float(error.abs().mean()), rel=1e-6)
    assert scalars["rmse"] == pytest.approx(float(error.square().mean().sqrt()), rel=1e-6)
    total = (target.double() - target.double().mean()).square().sum()
    assert scalars["r2"] == pytest.approx(float(1 - error.square().sum() / total), rel=1e-5)


def test_restoration_clips_outputs_to_the_image_range_before_psnr():
    task = TASKS["restoration"]()
    outputs, clean = task.reference_batch(seed=0)
    assert outputs.min() < 0 or outputs.max() > 1  # the noise overshoots: clipping matters
    mse = (outputs.double().clamp(0, 1) - clean.double()).square().mean()
    psnr = float(10 * torch.log10(1 / mse))
    assert _scalars(task, outputs, clean)["psnr"] == pytest.approx(psnr, rel=1e-5)


def test_boxes_iou_matches_the_formula():
    task = TASKS["boxes"]()
    outputs, target = task.reference_batch(seed=0)
    p, t = outputs.double(), target.double()
    inter = (torch.minimum(p[:, 2:], t[:, 2:]) - torch.maximum(p[:, :2], t[:, :2])).clamp_min(0)
    inter = inter.prod(1)
    union = (p[:, 2:] - p[:, :2]).prod(1) + (t[:, 2:] - t[:, :2]).prod(1) - inter
    scalars = _scalars(task, outputs, target)
    assert scalars["iou"] == pytest.approx(float((inter / union).mean()), rel=1e-5)
    assert scalars["coord_mae"] == pytest.approx(float((p - t).abs().mean()), rel=1e-6)


def test_retrieval_hands_its_embeddings_to_the_projector():
    task = TASKS["retrieval"]()
    embeddings, labels = task.reference_batch(seed=0)
    metrics = task.metrics()
    task.update(metrics, embeddings[:8], labels[:8])
    task.update(metrics, embeddings[8:], labels[8:])
    gathered, gathered_labels = task.embeddings(metrics)
    assert torch.equal(gathered, embeddings) and torch.equal(gathered_labels, labels)
    # leave-one-out nearest neighbour, by brute force in float64
    d = torch.cdist(embeddings.double(), embeddings.double()).fill_diagonal_(math.inf)
    recall1 = float((labels[d.argmin(1)] == labels).double().mean())
    assert _scalars(task, embeddings, labels)["recall@1"] == pytest.approx(recall1)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_tasks_without_pictures_or_embeddings_say_none(name: str):
    task = TASKS[name].example()
    outputs, target = task.reference_batch(seed=0)
    rows = task.picture_rows(outputs, target, outputs)
    if name in ("segmentation", "restoration"):
        assert [r.shape for r in rows] == [outputs.shape] * 3
        assert all(float(r.min()) >= 0 and float(r.max()) <= 1 for r in rows)
    else:
        assert rows is None
    if name != "retrieval":  # covered above: it gathers what the metrics saw
        assert task.embeddings(task.metrics()) is None


def _ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Σ_b (n_b / N)·|mean(correct in b) − mean(confidence in b)| over bins [k/B, (k+1)/B)."""
    slot = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return sum(
        (slot == b).mean() * abs(correct[slot == b].mean() - confidence[slot == b].mean())
        for b in range(n_bins)
        if (slot == b).any()
    )


def test_classification_scores_the_softmax_of_the_logits():
    """Logits that all lie in [0, 1], which torchmetrics would take for probabilities."""
    task = Classification.example()
    generator = torch.Generator().manual_seed(0)
    target = torch.arange(40) % task.num_classes
    outputs = torch.rand(40, task.num_classes, generator=generator)
    scalars = _scalars(task, outputs, target)
    probs, y = outputs.double().softmax(dim=1).numpy(), target.numpy()
    onehot = np.eye(task.num_classes)[y]
    assert scalars["auroc"] == pytest.approx(roc_auc_score(onehot, probs), abs=1e-6)
    assert scalars["ap"] == pytest.approx(average_precision_score(onehot, probs), abs=1e-6)
    ece = _ece(probs.max(axis=1), probs.argmax(axis=1) == y)
    assert scalars["ece"] == pytest.approx(ece, abs=1e-6)
    assert not {"confusion_matrix", "reliability"} & set(scalars)


def test_segmentation_scores_the_sigmoid_of_the_logits():
    """Logits that all lie in [0, 1] (probabilities 0.5-0.73), which torchmetrics would take for
    probabilities; AP and AUROC are binned on :func:`pixel_curve_thresholds`, so the reference
    scores the bin indices."""
    task = Segmentation.example()
    _, mask = task.reference_batch(seed=0)
    outputs = torch.rand(mask.shape, generator=torch.Generator().manual_seed(0)) + mask * 0.3
    outputs = outputs.clamp(0, 1)
    scalars = _scalars(task, outputs, mask)
    probs, y = outputs.double().sigmoid().flatten(), mask.flatten().numpy()
    binned = torch.bucketize(probs.float(), pixel_curve_thresholds(), right=True).numpy()
    assert scalars["pixel_auroc"] == pytest.approx(roc_auc_score(y, binned), abs=1e-6)
    assert scalars["pixel_ap"] == pytest.approx(average_precision_score(y, binned), abs=1e-6)
    assert scalars["ece"] == pytest.approx(_ece(probs.numpy(), y), abs=1e-6)
    # every positive logit is foreground at 0.5: Dice 2·fg / (fg + all)
    assert scalars["dice"] == pytest.approx(2 * y.sum() / (y.sum() + y.size), abs=1e-6)


def test_segmentation_tests_at_the_threshold_validation_chose():
    task = Segmentation.example()
    outputs, mask = task.reference_batch(seed=0)
    metrics = task.metrics()
    task.update(metrics, outputs, mask)
    computed = metrics.compute()
    assert task.choose(computed) == {"threshold": computed["threshold@best"]}
    scalars = task.test_scalars(metrics, computed, {"threshold": torch.tensor(0.38)})
    predicted, truth = outputs.double().sigmoid() >= 0.38, mask.bool()
    tp = float((predicted & truth).sum())
    errors = float((predicted & ~truth).sum() + (~predicted & truth).sum())
    assert float(scalars["dice@val_threshold"]) == pytest.approx(2 * tp / (2 * tp + errors))
    assert float(scalars["iou@val_threshold"]) == pytest.approx(tp / (tp + errors))
    assert not any(name.endswith("@best") for name in scalars)  # never chosen on the test
    assert float(scalars["dice"]) == pytest.approx(float(computed["dice"]))


FIGURES = {"classification": {"confusion_matrix", "reliability"}, "regression": {"pred_vs_target"}}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_tasks_draw_their_figures_and_pr_curves_from_the_metric_states(name: str):
    task = TASKS[name].example()
    outputs, target = task.reference_batch(seed=0)
    metrics = task.metrics()
    task.update(metrics, outputs, target)
    metrics.compute()
    figures = task.figures(metrics)
    assert set(figures) == FIGURES.get(name, set())
    assert all(isinstance(figure, Figure) for figure in figures.values())
    curves = task.pr_curves(metrics)
    assert set(curves) == ({"pr_curve"} if name == "segmentation" else set())
    for counts in curves.values():  # every pixel at every threshold
        assert ((counts.tp + counts.fp + counts.fn + counts.tn) == target.numel()).all()


@pytest.mark.parametrize(
    ("config", "mining"),
    [
        ("contrastive", None),
        ("hinge_embedding", None),
        ("triplet", "batch_hard"),
        ("triplet", "random"),
        ("triplet", "semi_hard"),
        ("triplet", "batch_all"),
        ("margin_ranking", "semi_hard"),
    ],
)
def test_retrieval_per_item_lengths_count_the_mined_entries(config: str, mining: str | None):
    """Counted by enumeration: pairs i < j; anchors with a positive and a negative; their
    (anchor, positive) pairs; their (anchor, positive, negative) triplets."""
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3])  # a lone class (3) and a pair-only class (2)
    embeddings = torch.randn(len(labels), 4, generator=torch.Generator().manual_seed(0))
    cfg = OmegaConf.load(CONF / "loss" / f"{config}.yaml")
    cfg.reduction = "none"
    if mining is not None:
        cfg.mining = mining
    loss = instantiate_with_data(cfg, {})
    n = len(labels)
    same = [[bool(labels[i] == labels[j]) for j in range(n)] for i in range(n)]
    pos = [[j for j in range(n) if same[a][j] and j != a] for a in range(n)]
    neg = [[j for j in range(n) if not same[a][j]] for a in range(n)]
    expected = {
        None: n * (n - 1) // 2,
        "batch_hard": sum(1 for a in range(n) if pos[a] and neg[a]),
        "random": sum(1 for a in range(n) if pos[a] and neg[a]),
        "semi_hard": sum(len(pos[a]) for a in range(n) if neg[a]),
        "batch_all": sum(len(pos[a]) * len(neg[a]) for a in range(n)),
    }[mining]
    task = TASKS["retrieval"]()
    assert per_item_shapes(task, loss, embeddings, labels) == {(expected,)}
    assert loss(embeddings, labels).shape == (expected,)


# --- the rare-class, likelihood and trivial-predictor metrics --------------------------------


def _batched_scalars(task: Task, outputs: Tensor, target: Tensor, batches: int = 4) -> dict:
    metrics = task.metrics()
    for out, tgt in zip(outputs.chunk(batches), target.chunk(batches), strict=True):
        task.update(metrics, out, tgt)
    return {k: float(v) for k, v in task.scalars(metrics.compute()).items()}


# 10 samples of each of 7 classes; class i is right DIAGONAL[i] times, else taken for i + 1: the
# recalls all differ, the hardest class is 1
DIAGONAL = [9, 2, 7, 5, 8, 3, 6]


@pytest.mark.parametrize(
    ("counts", "rarest", "third"),
    [
        # the rarest is not the hardest; three classes tie for the 2nd-3rd places: the lower two
        ([7, 4, 9, 3, 5, 4, 4], 3, [3, 1, 5]),
        # two classes tie for the rarest: the lower index first
        ([5, 6, 9, 2, 6, 7, 2], 3, [3, 6, 0]),
    ],
)
def test_tail_recall_is_the_recall_of_the_rarest_training_classes(counts, rarest, third):
    classes = len(DIAGONAL)
    task = Classification(classes, [f"c{c}" for c in range(classes)], counts)
    target = torch.arange(classes).repeat_interleave(10)
    predicted = torch.cat(
        [
            torch.tensor([c] * right + [(c + 1) % classes] * (10 - right))
            for c, right in enumerate(DIAGONAL)
        ]
    )
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(0))
    target, predicted = target[order], predicted[order]
    noise = torch.randn(len(target), classes, generator=torch.Generator().manual_seed(1))
    logits = 4.0 * torch.eye(classes)[predicted] + 0.1 * noise
    scalars = _batched_scalars(task, logits, target)
    recall = np.array(DIAGONAL, dtype=np.float64) / 10
    assert scalars["tail_recall"] == pytest.approx(recall[rarest], abs=1e-7)
    assert scalars["tail_recall_third"] == pytest.approx(recall[third].mean(), abs=1e-7)
    assert scalars["min_recall"] == pytest.approx(recall.min(), abs=1e-7)


def test_classification_nll_conf_gap_and_prior_loss_match_float64_formulas():
    """Over four batches; a few logits saturate (a float32 softmax gives the target probability
    0 there), which a NLL taken from float32 probabilities would make infinite."""
    task = Classification.example()
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, task.num_classes, (200,), generator=generator)
    logits = 3.0 * torch.randn(200, task.num_classes, generator=generator)
    logits[:5] = 0.0
    logits[torch.arange(5), (target[:5] + 1) % task.num_classes] = 120.0  # confidently wrong
    assert (logits[:5].softmax(1)[torch.arange(5), target[:5]] == 0).all()
    scalars = _batched_scalars(task, logits, target)

    z, y = logits.double(), target
    # −log softmax(z)[y] = log Σ_c exp(z_c − m) + m − z_y, m = max_c z_c (no overflow)
    m = z.max(1).values
    nll = ((z - m[:, None]).exp().sum(1).log() + m - z[torch.arange(len(y)), y]).mean()
    probs = z.softmax(1)
    conf_gap = probs.max(1).values.mean() - (probs.argmax(1) == y).double().mean()
    prior = torch.tensor(task.class_counts, dtype=torch.float64) / sum(task.class_counts)
    prior_loss = -prior[y].log().mean()
    assert scalars["nll"] == pytest.approx(float(nll), rel=1e-6)
    # the confidences are float32 softmax values, summed in float64
    assert scalars["conf_gap"] == pytest.approx(float(conf_gap), abs=1e-6)
    assert scalars["prior_loss"] == pytest.approx(float(prior_loss), rel=1e-6)
    assert scalars["conf_gap"] > 0  # the saturated wrong ones: overconfident


def test_segmentation_dice_per_image_leaves_out_empty_targets_and_prior_loss_is_bce():
    task = Segmentation([900, 100])
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(8, 1, 12, 12, generator=generator) < 0.15).float()
    logits = torch.randn(8, 1, 12, 12, generator=generator) + 3.0 * (2 * target - 1)
    target[2] = 0.0  # empty target, false positives: Dice 0 if it counted
    target[5], logits[5] = 0.0, -5.0  # empty target, empty prediction: 0/0 if it counted
    assert (logits[2] > 0).any()
    scalars = _batched_scalars(task, logits, target)

    dice = []
    for out, tgt in zip(logits.double().numpy(), target.double().numpy(), strict=True):
        predicted, truth = out > 0, tgt > 0.5
        if truth.any():
            tp = (predicted & truth).sum()
            dice.append(2 * tp / (2 * tp + (predicted & ~truth).sum() + (~predicted & truth).sum()))
    assert len(dice) == 6
    assert scalars["dice_per_image"] == pytest.approx(np.mean(dice), abs=1e-7)
    y, p = target.double(), 100 / 1000
    bce = -(y * math.log(p) + (1 - y) * math.log(1 - p)).mean()
    assert scalars["prior_loss"] == pytest.approx(float(bce), rel=1e-6)


def test_regression_prior_loss_is_the_mse_of_the_training_mean():
    """Targets far from zero: a float32 sum of squares about zero would lose the spread."""
    task = TASKS["regression"](target_mean=1e4 + 0.3)
    generator = torch.Generator().manual_seed(0)
    target = 1e4 + torch.randn(64, 1, generator=generator)
    outputs = torch.randn(64, 1, generator=generator)  # not read: the prediction is constant
    scalars = _batched_scalars(task, outputs, target)
    reference = np.mean((target.double().numpy() - (1e4 + 0.3)) ** 2)
    assert scalars["prior_loss"] == pytest.approx(reference, rel=1e-6)


def test_the_tasks_take_their_baselines_from_the_training_split():
    segmentation = SegImbalancedDataModule(n_train=4, n_val=2, n_test=2, image_size=16)
    regression = RegressionDataModule(n_train=50, n_val=10, n_test=10)
    seg_task, reg_task = build_task(segmentation), build_task(regression)
    masks = segmentation.splits["train"].targets
    assert seg_task.class_counts == [int((masks == 0).sum()), int((masks == 1).sum())]
    train_targets = regression.splits["train"].targets.double()
    assert reg_task.target_mean == float(train_targets.mean())
    assert reg_task.target_mean != float(regression.splits["val"].targets.double().mean())
