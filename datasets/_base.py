"""In-memory datasets served a batch at a time, and the DataModule bases every task shares.

Data are decoded once into tensors; a batch is one fancy-index into them (``__getitems__``), with
no per-sample Python or PIL work, so the loader costs next to nothing beside the model.
"""

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from losses.checks import check_range

BatchTransform = Callable[[Tensor], Tensor]
SPLITS = ("train", "val", "test")


def split_stream(seed: int, split: str) -> int:
    """The seed of ``split``'s own random stream under data seed ``seed``: ``3 * seed + i`` for
    split ``i`` (train, val, test), so data seeds 0, 1, 2 ... never share a stream.

    >>> [split_stream(1, split) for split in SPLITS]
    [3, 4, 5]
    """
    return 3 * seed + SPLITS.index(split)


def to_unit(images: Tensor) -> Tensor:
    """uint8 pixels to float32 in [0, 1] (``x / 255``), once per batch: the batch transform of
    images stored as uint8 and served in the range of the generated ones."""
    return images.float().div_(255)


def keep_batch(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a whole batch."""
    return batch


class TensorBatches(Dataset):
    """Inputs and targets held in memory; ``inputs_transform`` runs once per batch.

    ``DataLoader`` fetches through ``__getitems__`` with the list of a batch's indices, so a batch
    costs one indexing and one transform call.
    """

    def __init__(
        self, inputs: Tensor, targets: Tensor, inputs_transform: BatchTransform | None = None
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(
                f"inputs and targets differ in length: {len(inputs)} vs {len(targets)}"
            )
        self.inputs = inputs
        self.targets = targets
        self.inputs_transform = inputs_transform

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        inputs = self.inputs[index]
        if self.inputs_transform is not None:
            inputs = self.inputs_transform(inputs)
        return inputs, self.targets[index]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        inputs, targets = self.__getitems__([i])
        return inputs[0], targets[0]


class EpochShuffle(Sampler[int]):
    """A fresh permutation each epoch, drawn from ``(seed, epoch)`` alone.

    Lightning calls ``set_epoch`` at the start of every epoch, so a run resumed from a checkpoint
    sees the same batch order as an uninterrupted one; ``resume_at`` skips the start of an
    epoch's permutation that a preempted run had trained. ``seed`` defaults to the one
    ``seed_everything`` set for the run.

    >>> order = EpochShuffle(6, seed=0)
    >>> order.set_epoch(2)
    >>> whole = list(order)
    >>> order.resume_at(2, batches=2, batch_size=2)
    >>> list(order) == whole[4:], list(order) == whole  # the skip applies once
    (True, True)
    """

    def __init__(self, size: int, seed: int | None = None) -> None:
        self.size = size
        self.seed = torch.initial_seed() if seed is None else seed
        self.epoch = 0
        self.skip: tuple[int, int] | None = None  # (epoch, samples already trained in it)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches: int, batch_size: int) -> None:
        """The next pass over ``epoch`` starts after its first ``batches`` batches."""
        self.epoch = epoch
        self.skip = (epoch, batches * batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch)) & (2**63 - 1))
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.skip is not None and self.skip[0] == self.epoch:
            order = order[self.skip[1] :]
            self.skip = None
        return iter(order)

    def __len__(self) -> int:
        return self.size


class ResumableLoader(DataLoader):
    """A training loader whose epoch can resume at the batch where a preempted run stopped.

    Lightning saves a training loader's ``state_dict`` in every checkpoint and gives it back to
    ``load_state_dict`` before the resumed run draws its first batch (its interface for resumable
    loaders). The preemption callback (``trainer.callbacks.preemption``) sets ``position``, the
    epoch and the batches trained in it, just before it saves; on load, the loader's order
    (:class:`EpochShuffle`, or a batch sampler with ``resume_at``) skips those batches. Other
    checkpoints (each epoch's) hold no position: they resume at an epoch's start.
    """

    position: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        if self.position is None:
            return {}
        epoch, batches = self.position
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not state:
            return
        for order in (self.batch_sampler, self.sampler):
            if hasattr(order, "resume_at"):
                order.resume_at(state["epoch"], state["batches"], self.batch_size or 1)
                return
        raise ValueError(
            f"resume: the checkpoint stopped at batch {state['batches']} of epoch "
            f"{state['epoch']}, but this loader's order ({type(self.sampler).__name__}) cannot "
            "skip to it"
        )


class InMemoryDataModule(L.LightningDataModule):
    """Base of every datamodule: splits built once, batched loaders, task metadata.

    Subclasses set ``task`` (a name in ``trainer.tasks.TASKS``) and ``name`` (the config's name,
    which starts every error message) and implement ``build_splits``, which returns the train,
    validation and test :class:`TensorBatches`. ``data_stats`` exposes what a loss or the task's
    metrics may need from the training split (``class_counts``, ``target_mean``) and
    ``model_inputs`` what a model needs from the data; ``train.py`` fills both into the configs
    left null (``trainer.config.instantiate_with_data``), and the task takes its own from
    ``data_stats`` (``Task.from_datamodule``).
    """

    task: str = ""
    num_classes: int
    in_channels: int | None = None  # None: tabular rows, no image
    image_size: int | None = None

    def __init__(self, batch_size: int, eval_batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.splits: dict[str, TensorBatches] | None = None

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = dict(zip(SPLITS, self.build_splits(), strict=True))

    @property
    def data_stats(self) -> dict:
        return {}

    def train_class_counts(self, minlength: int = 0) -> list[int]:
        """Samples (or pixels) of each class index in the training targets."""
        self.setup()
        return torch.bincount(
            self.splits["train"].targets.flatten().long(), minlength=minlength
        ).tolist()

    @property
    def num_outputs(self) -> int | None:
        return self.num_classes

    @property
    def in_shape(self) -> list[int]:
        """One sample's shape, ``[C, H, W]``, for models that flatten it (MLP)."""
        return [self.in_channels, self.image_size, self.image_size]

    @property
    def model_inputs(self) -> dict:
        """What model configs leave null and the data fill in; what the data leave ``None`` (no
        image for tabular rows, an embedding size the model chooses) stays the model's. ``task``
        lets one model config serve several tasks (``model=timm``: class logits on
        classification, an embedding on retrieval)."""
        inputs = {
            "task": self.task,
            "in_shape": self.in_shape,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "num_outputs": self.num_outputs,
        }
        return {key: value for key, value in inputs.items() if value is not None}

    def _loader(self, split: str, train: bool) -> DataLoader:
        self.setup()
        dataset = self.splits[split]
        return (ResumableLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=EpochShuffle(len(dataset)) if train else None,
            # a ragged last batch would give BatchNorm a batch of one and skew per-step curves
            drop_last=train and len(dataset) > self.batch_size,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


class SyntheticDataModule(InMemoryDataModule):
    """Base of the generated datasets: three splits of ``n_train``, ``n_val`` and ``n_test``
    samples, each drawn from its own stream of the data ``seed``.

    Subclasses implement ``generate_split(split, n, seed)``, returning one split's inputs and
    targets; the streams are ``3 * seed + i`` for split ``i`` (train, val, test), so changing
    ``n_train`` leaves val/test unchanged and data seeds 0, 1, 2 ... never share a stream.
    """

    name: str  # the config's name, first word of every error message

    def __init__(
        self,
        n_train: int,
        n_val: int,
        n_test: int,
        seed: int,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers)
        for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_range(self.name, key, value, 1)
        self.sizes = (n_train, n_val, n_test)
        self.seed = seed

    def split_seed(self, split: str) -> int:
        """The seed of ``split``'s own stream."""
        return split_stream(self.seed, split)

    def generate_split(self, split: str, n: int, seed: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def build_splits(self) -> tuple[TensorBatches, TensorBatches, TensorBatches]:
        return tuple(
            TensorBatches(*self.generate_split(split, n, self.split_seed(split)))
            for split, n in zip(SPLITS, self.sizes, strict=True)
        )
