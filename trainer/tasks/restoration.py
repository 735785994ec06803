"""The restoration (denoising) task: restored images ``[N, C, H, W]`` against the clean images
in [0, 1]."""

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from trainer.tasks.base import Task, register

# two scales of the SSIM losses' 11-pixel gaussian window (ms_ssim_l1): smaller images are
# rejected by design
MIN_SIDE = 22


@register
class Restoration(Task):
    """PSNR and SSIM (torchmetrics, data range 1) of the restored images."""

    name = "restoration"
    monitor = "psnr"

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
            }
        )

    def update(self, metrics: MetricCollection, outputs: Tensor, target: Tensor) -> None:
        # the metrics assume data range 1: what the model overshoots is clipped as a display would
        metrics.update(outputs.float().clamp(0, 1), target)

    def picture_rows(self, inputs: Tensor, target: Tensor, outputs: Tensor) -> list[Tensor]:
        """Noisy input, restored, clean."""
        return [inputs.clamp(0, 1), outputs.clamp(0, 1), target]

    def reference_batch(self, seed: int) -> tuple[Tensor, Tensor]:
        """One 24x24 gray image (the smallest two SSIM scales hold) of a bright square on a
        darker background; the output the clean image plus gaussian noise (std 0.2), as a fresh
        residual U-Net passes its noisy input on."""
        g = torch.Generator().manual_seed(seed)
        clean = torch.full((1, 1, MIN_SIDE + 2, MIN_SIDE + 2), 0.2)
        top, left = torch.randint(0, 12, (2,), generator=g).tolist()
        clean[..., top : top + 12, left : left + 12] = 0.8
        return clean + 0.2 * torch.randn(clean.shape, generator=g), clean
