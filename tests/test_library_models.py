"""``model=timm`` and ``model=smp``: built from the data through the configs, they are the models
timm and segmentation_models_pytorch build themselves with the same arguments (same seed, same
weights, same outputs), with our heads (an L2-normalised embedding on retrieval, a residual on
restoration), and they train a tiny epoch on every task they fit. That neither library is imported
before one of these models is built, tests/test_runtime_imports.py checks."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from train import train
from trainer.config import instantiate_with_data

SEED = 0


def build(cfg) -> tuple[nn.Module, object, torch.Tensor]:
    """The datamodule, then the model from the data (as ``train.py``), seeded; a validation
    batch of inputs."""
    datamodule = instantiate(cfg.data)
    torch.manual_seed(SEED)
    model = instantiate_with_data(cfg.model, datamodule.model_inputs)
    inputs, _ = next(iter(datamodule.val_dataloader()))
    return model, datamodule, inputs[:8]


def seeded(factory):
    torch.manual_seed(SEED)
    return factory()


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def assert_same_network(ours: nn.Module, reference: nn.Module, inputs: torch.Tensor) -> None:
    """Same parameter count, same initial weights and same eval-mode outputs as the reference."""
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    for (name, mine), (_, theirs) in zip(
        ours.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0, msg=name)
    ours.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours.net(inputs), reference(inputs), rtol=0, atol=0)


def test_timm_classifier_is_timms_own_with_the_datas_classes_and_channels(make_cfg):
    import timm

    model, datamodule, inputs = build(make_cfg("data=mnist", "model=timm", "model.name=resnet18"))
    classes, channels = datamodule.num_classes, datamodule.in_channels
    assert model.net.get_classifier().out_features == classes == 10
    assert first_conv(model).in_channels == channels == 1
    reference = seeded(
        lambda: timm.create_model("resnet18", pretrained=False, num_classes=10, in_chans=1)
    )
    assert_same_network(model, reference, inputs)
    with torch.no_grad():
        assert model(inputs).shape == (len(inputs), classes)


def test_timm_on_retrieval_is_an_l2_normalised_embedding(make_cfg):
    import timm

    model, datamodule, inputs = build(
        make_cfg("data=retrieval", "model=timm", "model.name=resnet18", "model.embedding_size=32")
    )
    assert datamodule.num_outputs is None  # the data leave the width to the model
    reference = seeded(
        lambda: timm.create_model("resnet18", pretrained=False, num_classes=32, in_chans=1)
    )
    assert_same_network(model, reference, inputs)
    with torch.no_grad():
        embeddings = model(inputs)
        expected = F.normalize(reference(inputs).double(), dim=1)
    assert embeddings.shape == (len(inputs), 32)
    torch.testing.assert_close(embeddings.double(), expected, rtol=0, atol=1e-6)
    norms = embeddings.double().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-6)


def test_smp_segmentation_is_smps_own_unet_with_one_logit_per_pixel(make_cfg):
    import segmentation_models_pytorch as smp

    model, datamodule, inputs = build(make_cfg("model=smp", "model.encoder_depth=5"))
    size = datamodule.image_size
    reference = seeded(
        lambda: smp.create_model(
            "Unet", encoder_name="resnet18", encoder_weights=None, in_channels=1, classes=1
        )
    )
    assert first_conv(model).in_channels == datamodule.in_channels == 1
    assert_same_network(model, reference, inputs)
    with torch.no_grad():
        assert model(inputs).shape == (len(inputs), 1, size, size)


def test_smp_restoration_adds_its_output_to_the_input(make_cfg):
    import segmentation_models_pytorch as smp

    model, datamodule, inputs = build(make_cfg("data=restoration", "model=smp"))
    reference = seeded(
        lambda: smp.create_model(
            "Unet",
            encoder_name="resnet18",
            encoder_weights=None,
            in_channels=1,
            classes=1,
            encoder_depth=3,  # the tiny budget's
            decoder_channels=[64, 32, 16],  # the default's last three
        )
    )
    assert_same_network(model, reference, inputs)
    with torch.no_grad():
        restored = model(inputs)
        torch.testing.assert_close(restored, inputs + reference(inputs), rtol=0, atol=0)
    assert restored.shape == inputs.shape == (len(inputs), datamodule.in_channels, 32, 32)


def test_smps_unet_takes_a_size_that_is_no_multiple_of_32(make_cfg):
    # smp's Unet interpolates in its decoder (it does not require divisible sizes); FPN and the
    # others do, which tests/test_bad_input.py checks
    model, datamodule, inputs = build(
        make_cfg("model=smp", "model.encoder_depth=5", "data.image_size=48")
    )
    assert datamodule.image_size == 48
    with torch.no_grad():
        assert model(inputs).shape == (len(inputs), 1, 48, 48)


@pytest.mark.parametrize(
    ("data", "model", "head"),
    [
        ("mnist", "timm", ("net.fc.weight", [10, 96])),  # test_resnet's 96 features, 10 classes
        ("retrieval", "timm", ("net.fc.weight", [64, 96])),  # the 64-d embedding
        ("seg_imbalanced", "smp", ("net.segmentation_head.0.weight", [1, 16, 3, 3])),
        ("restoration", "smp", ("net.segmentation_head.0.weight", [1, 16, 3, 3])),
    ],
)
def test_library_model_trains_a_tiny_epoch(make_cfg, tmp_path: Path, data, model, head):
    metrics = train(make_cfg(f"data={data}", f"model={model}"))
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "completed"
    assert math.isfinite(metrics["train/loss_epoch"]) and math.isfinite(metrics["test/loss"])
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    name, shape = head
    assert list(checkpoint["state_dict"][f"model.{name}"].shape) == shape
    assert checkpoint["global_step"] > 0
