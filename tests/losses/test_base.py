"""The loss contract: when values are checked, keyword-only hyperparameters, the base module."""

import importlib
import inspect
import pkgutil
import threading
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import losses
import losses.checks as checks
from losses import classification, combo, focal, segmentation
from losses.base import Loss
from losses.checks import check_binary_target, check_class_values, value_checks
from losses.checks import values_checkable as checkable
from trainer.config import instantiate_with_data

CONF = Path(__file__).resolve().parents[2] / "conf" / "loss"

# every loss of every module of losses/, found by walking the package: a new loss, or a new
# family, is covered the moment it exists; the private bases (_ElementWise, ...) are no losses
LOSS_CLASSES = sorted(
    {
        obj
        for info in pkgutil.iter_modules(losses.__path__)
        for obj in vars(importlib.import_module(f"losses.{info.name}")).values()
        if isinstance(obj, type)
        and issubclass(obj, Loss)
        and obj is not Loss
        and obj.__module__ == f"losses.{info.name}"
        and not obj.__name__.startswith("_")
    },
    key=lambda cls: (cls.__module__, cls.__qualname__),
)
# The module defaults that legitimately differ from their function's: the function requires the
# argument, the module's config may leave it null.
DEFAULT_FILLED_LATER = {
    # the training split's class counts, which the framework fills in from the datamodule
    (classification.ClassWeightedCE, "class_counts"),
    # null weighs every component 1.0: a default that depends on the components given
    (combo.Combo, "weights"),
}


def _as_if_on_an_accelerator(monkeypatch):
    """CPU tensors stand in for an accelerator's: the device test says "not CPU"."""
    monkeypatch.setattr(checks, "_on_cpu", lambda tensor: False)


# ---- when values are checked ---------------------------------------------------------------


def test_cpu_tensors_are_checked_and_other_devices_only_inside_value_checks():
    cpu, meta = torch.zeros(3), torch.zeros(3, device="meta")
    assert checkable(cpu) and not checkable(meta)
    with value_checks():
        assert checkable(cpu) and checkable(meta)
    assert not checkable(meta)


def test_value_checks_is_re_entrant_and_per_context():
    meta = torch.zeros(1, device="meta")
    seen_by_thread = []
    with value_checks():
        with value_checks():
            assert checkable(meta)
        assert checkable(meta)  # leaving the inner block keeps the outer one in force
        thread = threading.Thread(target=lambda: seen_by_thread.append(checkable(meta)))
        thread.start()
        thread.join()
    assert not checkable(meta)
    assert seen_by_thread == [False]  # another thread has its own context


def test_meta_tensors_run_without_any_host_read_outside_value_checks():
    # a meta tensor has no values: any host read (``.item()``, ``bool()``, ``int()``) raises, so
    # a loss that runs on one outside ``value_checks`` did not sync (``compute``, since autocast
    # has no meta device)
    logits = torch.zeros(4, 3, device="meta")
    indices = torch.zeros(4, dtype=torch.int64, device="meta")
    mask = torch.zeros(2, 1, 3, 3, device="meta")
    assert classification.cross_entropy(logits, indices).device.type == "meta"
    assert focal.FocalLoss().compute(logits, indices).device.type == "meta"
    assert focal.FocalLoss().compute(mask, mask).device.type == "meta"
    assert segmentation.balanced_bce(mask, mask, per_image=True).device.type == "meta"
    assert segmentation.ohem_bce(mask, mask).device.type == "meta"
    with value_checks(), pytest.raises((RuntimeError, NotImplementedError)):
        classification.cross_entropy(logits, indices)  # the check now reads values: it tried


# every shipped config of these families but combo (its components run through ``with_stats``,
# whose autocast has no meta device; the components are covered on their own)
META_CONFIGS = {
    "classification": [
        "ce",
        "nll",
        "class_weighted_ce",
        "kl_div",
        "bce_onehot",
        "multi_margin",
        "focal",
    ],
    "segmentation": ["bce", "bce_manual", "balanced_bce", "ohem_bce", "dice", "tversky", "focal"],
}


@pytest.mark.parametrize(
    ("task", "name"), [(task, name) for task, names in META_CONFIGS.items() for name in names]
)
def test_every_loss_runs_on_meta_tensors_without_a_host_read(task, name):
    loss = instantiate_with_data(OmegaConf.load(CONF / f"{name}.yaml"), {"class_counts": [5, 3, 2]})
    if task == "classification":
        x = torch.zeros(4, 3, device="meta")
        target = torch.zeros(4, dtype=torch.int64, device="meta")
    else:
        x = target = torch.zeros(2, 1, 3, 3, device="meta")
    assert loss.to("meta").compute(x, target).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("task", "name"), [(task, name) for task, names in META_CONFIGS.items() for name in names]
)
def test_no_host_sync_on_cuda_outside_value_checks(task, name):
    loss = instantiate_with_data(OmegaConf.load(CONF / f"{name}.yaml"), {"class_counts": [5, 3, 2]})
    loss = loss.to("cuda")
    g = torch.Generator().manual_seed(0)
    if task == "classification":
        x, good, bad = torch.randn(4, 3, generator=g), torch.tensor([0, 1, 2, 0]), torch.arange(4)
    else:
        x = torch.randn(2, 1, 3, 3, generator=g)
        good = (torch.rand(2, 1, 3, 3, generator=g) > 0.5).float()
        bad = 2 * good
    x, good, bad = x.cuda(), good.cuda(), bad.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a host read now raises
    try:
        value = loss(x, good)
        if task == "segmentation":  # (a bad class index would trip a device-side assert)
            loss(x, bad)  # unchecked: no error, no sync (the value is meaningless)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = loss.to("cpu")(x.cpu(), good.cpu())
    torch.testing.assert_close(value.cpu(), expected, rtol=1e-5, atol=1e-6)  # kernels differ
    with value_checks(), pytest.raises(ValueError, match=rf"{name}: expected"):
        loss.to("cuda")(x, bad)  # checked before any kernel sees the bad values


def test_bad_values_pass_unchecked_off_cpu_and_raise_inside_value_checks(monkeypatch):
    _as_if_on_an_accelerator(monkeypatch)
    logits, bad_indices = torch.zeros(4, 3), torch.tensor([0, 1, 2, 5])
    mask, bad_mask = torch.zeros(2, 1, 3, 3), torch.full((2, 1, 3, 3), 2.0)
    check_class_values("ce", bad_indices, 3)  # no check, no error
    check_binary_target("bce", mask, bad_mask)
    with value_checks():
        with pytest.raises(ValueError, match=r"ce: expected class indices in \[0, 3\), got"):
            check_class_values("ce", bad_indices, 3)
        with pytest.raises(ValueError, match=r"bce: expected target values in \[0, 1\]"):
            check_binary_target("bce", mask, bad_mask)
        with pytest.raises(ValueError, match=r"focal: expected class indices in \[0, 3\)"):
            focal.FocalLoss()(logits, bad_indices)
        with pytest.raises(ValueError, match=r"dice: expected target values in \[0, 1\]"):
            segmentation.DiceLoss()(mask, bad_mask)


def test_never_checked_while_torch_compile_traces():
    @torch.compile(backend="eager", fullgraph=True)
    def checked(tensor):
        return tensor + 1 if checkable(tensor) else tensor - 1

    x = torch.zeros(2)
    assert checkable(x)
    torch.testing.assert_close(checked(x), x - 1)
    with value_checks():
        torch.compiler.reset()
        torch.testing.assert_close(checked(x), x - 1)


# ---- keyword-only hyperparameters, one check per loss --------------------------------------


def test_the_walk_finds_every_family():
    names = {cls.__name__ for cls in LOSS_CLASSES}
    assert {
        "BCEWithLogitsLoss",
        "Combo",
        "CrossEntropy",
        "FocalLoss",
        "GIoU",
        "L1",
        "SSIMLoss",
        "Triplet",
    } <= names
    assert not {"Loss", "_ElementWise", "_MinedLoss", "_SimilarityL1"} & names


@pytest.mark.parametrize("cls", LOSS_CLASSES, ids=lambda cls: cls.__name__)
def test_hyperparameters_are_keyword_only_and_checked_in_one_place(cls):
    init = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert init and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in init), cls
    with pytest.raises(TypeError, match="positional argument"):
        cls(1.0)
    function = list(inspect.signature(cls.function).parameters.values())
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in function[:2])
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in function[2:]), cls.function
    check = list(inspect.signature(cls.check).parameters.values())
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in check), cls.check
    # the module, its function and its check take the same hyperparameters, same defaults
    assert [p.name for p in init] == [p.name for p in function[2:]] == [p.name for p in check]
    for module_p, function_p in zip(init, function[2:], strict=True):
        differs = module_p.default != function_p.default
        expected = (cls, module_p.name) in DEFAULT_FILLED_LATER
        assert differs == expected, (cls, module_p.name, module_p.default, function_p.default)
    # every caller passes the check every hyperparameter: a default there would be a third copy
    assert all(p.default is inspect.Parameter.empty for p in check), cls.check


@pytest.mark.parametrize(
    "function",
    [focal.sigmoid_focal_loss, focal.softmax_focal_loss, classification.class_weights],
    ids=lambda f: f.__name__,
)
def test_helper_forms_are_keyword_only_too(function):
    with pytest.raises(TypeError, match="positional argument"):
        function(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64), 2.0)


# ---- the base module -----------------------------------------------------------------------


class _Scaled(Loss):
    """A minimal subclass: the contract as the docs describe it."""

    tasks = ("regression",)

    @staticmethod
    def check(*, scale: float) -> None:
        checks.check_range("scaled", "scale", scale, 0.0, low_open=True)

    @staticmethod
    def function(input, target, *, scale: float = 1.0):
        _Scaled.check(scale=scale)
        return scale * (input - target).abs().mean()

    def __init__(self, *, scale: float = 1.0) -> None:
        super().__init__(scale=scale)


def test_base_checks_keeps_computes_and_shows_the_hyperparameters():
    with pytest.raises(ValueError, match=r"scaled: expected scale > 0.0, got 0.0"):
        _Scaled(scale=0.0)
    loss = _Scaled(scale=3.0)
    assert loss.hyperparameters == {"scale": 3.0}
    assert repr(loss) == "_Scaled(scale=3.0)"
    x, y = torch.tensor([1.0, 4.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    torch.testing.assert_close(loss(x, y), torch.tensor(7.5, dtype=torch.float64))
    value, stats = loss.with_stats(x, y)
    assert stats == {} and value.item() == 7.5


def test_forward_runs_in_float32_with_autocast_off():
    # bf16 inputs are upcast exactly (every bf16 is a float32), so the value is the float32 one
    x = torch.tensor([1.5, -2.25, 3.0]).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = _Scaled(scale=1 / 3)(x, torch.zeros(3, dtype=torch.bfloat16))
    assert loss.dtype == torch.float32
    expected = (torch.tensor([1.5, 2.25, 3.0]).sum() / 3) / 3  # float32 as written
    torch.testing.assert_close(loss, expected, rtol=2e-7, atol=0.0)  # float32 rounding order
