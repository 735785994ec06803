"""A short real training run on Debian's Fashion-MNIST (dataset-fashion-mnist), with a bar."""

from pathlib import Path

import pytest

from train import train

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(
    not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist (scripts/setup.sh does)"
)
def test_mlp_two_epochs_on_real_fashion_mnist(make_cfg):
    # two epochs of the MLP on the full 55k training images: ~10 s on two CPU cores
    cfg = make_cfg(
        "data=fashion_mnist",
        "model=mlp",
        "data.data_dir=/nonexistent",
        "data.download=false",
        "trainer.max_epochs=2",
        tiny=False,
    )
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.84
    assert metrics["test/min_recall"] >= 0.4  # the hard class (shirt) is learned too
