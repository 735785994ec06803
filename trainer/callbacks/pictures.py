"""Pictures to TensorBoard: the validation sample grid, the task's figures and PR curves, the
embedding projector."""

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from trainer.callbacks.variant import VariantCallback
from trainer.figures import add_pr_curve


class PictureGrid(VariantCallback):
    """Each validation epoch, a grid of the first ``num_images`` validation samples to TensorBoard.

    Rows come from the task (segmentation: input, target mask, predicted probability); tasks
    without pictures log nothing.
    """

    def __init__(self, num_images: int = 8, variant: int | None = None) -> None:
        self.num_images = num_images
        self.variant = variant

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scope = self.scope(pl_module)
        loggers = [lg for lg in scope.loggers if isinstance(lg, TensorBoardLogger)]
        active = self.active(pl_module)
        if trainer.sanity_checking or not loggers or not trainer.is_global_zero or not active:
            return
        dataset = trainer.val_dataloaders.dataset
        inputs, target = dataset.__getitems__(list(range(min(self.num_images, len(dataset)))))
        with torch.no_grad():
            outputs = scope.experiment(inputs.to(pl_module.device)).float().cpu()
        rows = scope.experiment.task.picture_rows(inputs, target, outputs)
        if rows is None:
            return
        grid = make_grid(torch.cat([r.float() for r in rows]), nrow=len(inputs), pad_value=1.0)
        for logger in loggers:
            logger.experiment.add_image("val/pictures", grid, trainer.global_step)


class TaskFigures(VariantCallback):
    """The task's pictures (``task.figures``: confusion matrix, reliability diagram, regression
    scatter) and PR curves (``task.pr_curves``) to TensorBoard as ``<split>/<name>``, for the
    validation split every ``every_n_epochs`` epochs and at the last epoch (after the epoch's
    validation), and for the test split.

    They come from the split's metric states after the module computed them: the ``on_*_end``
    hooks run after the module's epoch end, and the module resets the states only when the next
    epoch starts. The PR counts are summed across processes, so every process asks for them;
    only process zero draws and writes. Nothing without a TensorBoard logger.
    """

    def __init__(self, every_n_epochs: int = 1, variant: int | None = None) -> None:
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(
                f"TaskFigures: expected every_n_epochs a positive int, got {every_n_epochs!r}"
            )
        self.every_n_epochs = every_n_epochs
        self.variant = variant

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if not trainer.sanity_checking and (
            epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs
        ):
            self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module, "test")

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        scope = self.scope(pl_module)
        loggers = [lg for lg in scope.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or (split == "val" and not self.active(pl_module)):
            return
        task, metrics = scope.experiment.task, getattr(scope.experiment, f"{split}_metrics")
        curves = task.pr_curves(metrics)
        if not trainer.is_global_zero:
            return
        figures = task.figures(metrics)
        for logger in loggers:
            for name, counts in curves.items():
                add_pr_curve(logger.experiment, f"{split}/{name}", counts, trainer.global_step)
            for name, figure in figures.items():
                logger.experiment.add_figure(f"{split}/{name}", figure, trainer.global_step)


class EmbeddingProjector(VariantCallback):
    """The test split's embeddings, with their labels, to TensorBoard's projector (retrieval)."""

    def __init__(self, max_points: int = 2000, variant: int | None = None) -> None:
        self.max_points = max_points
        self.variant = variant

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs before the module's own hook, which computes and resets the metrics
        scope = self.scope(pl_module)
        found = scope.experiment.task.embeddings(scope.experiment.test_metrics)
        loggers = [lg for lg in scope.loggers if isinstance(lg, TensorBoardLogger)]
        if found is None or not loggers or not trainer.is_global_zero:
            return
        embeddings, labels = (t[: self.max_points].cpu() for t in found)
        for logger in loggers:
            logger.experiment.add_embedding(
                embeddings,
                metadata=labels.tolist(),
                global_step=trainer.global_step,
                tag="test/embeddings",
            )
