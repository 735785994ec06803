"""``data=retrieval_folder``: metric learning on the user's images in the ImageFolder layout
(``datasets/image_folder.py``), trained on P x K batches and evaluated by retrieval on classes
never seen in training, as ``data=retrieval`` does with its glyphs.

Layouts read (``root`` is ``data.root``):

* ``root/<class>/*.png|jpg|...``: the classes are split disjointly (seeded with ``split_seed``)
  into training classes and held-out classes (``test_classes``: a fraction of the classes, or a
  count); as in ``data=retrieval``, each held-out class gives half its images (a seeded half,
  rounded down) to the validation split and the rest to the test split, so both galleries hold
  only unseen classes;
* ``root/train/<class>/``, ``root/test/<class>/`` and optionally ``root/val/<class>/``: the
  user's splits as they are (their classes need not be disjoint); without ``root/val``, the test
  classes' images are halved into val and test as above. The classes are all the splits' folders.

Inputs are uint8 ``[N, C, S, S]`` scaled to [0, 1] per batch, as ``data=retrieval`` gives them.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from datasets._base import SPLITS, TensorBatches, to_unit
from datasets.errors import DataError
from datasets.files import DEFAULT_CACHE_DIR, DEFAULT_MAX_MEMORY, StreamedImages
from datasets.image_folder import FolderDataModule, list_layout
from datasets.retrieval import RetrievalDataModule
from losses.checks import check_range


def held_out_classes(num_classes: int, test_classes: float, seed: int, name: str) -> Tensor:
    """The held-out class indices (sorted): a seeded choice of ``test_classes`` classes (an
    int) or of that fraction of them (a float in (0, 1)), rounded, leaving at least two classes
    on each side (a P x K batch needs two classes; retrieval needs two to rank)."""
    count = test_classes if isinstance(test_classes, int) else round(test_classes * num_classes)
    if not 2 <= count <= num_classes - 2:
        raise DataError(
            f"{name}: {num_classes} classes cannot give {count} held-out classes "
            f"(data.test_classes={test_classes}) and keep two on each side"
        )
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_classes, generator=generator)[:count].sort().values


def halve_per_class(
    index: Tensor, labels: Tensor, seed: int, name: str, folders: Sequence[Path]
) -> tuple[Tensor, Tensor]:
    """``index`` split per class into val (a seeded half, rounded down) and test (the rest);
    ``folders[c]`` is class c's folder, for the message when it holds a single image."""
    generator = torch.Generator().manual_seed(seed)
    val, test = [], []
    for c in labels[index].unique().tolist():
        members = index[labels[index] == c]
        if len(members) < 2:
            raise DataError(
                f"{name}: held-out class {folders[c]} has 1 image, too few to give val and test "
                "one each"
            )
        shuffled = members[torch.randperm(len(members), generator=generator)]
        val.append(shuffled[: len(members) // 2])
        test.append(shuffled[len(members) // 2 :])
    return torch.cat(val).sort().values, torch.cat(test).sort().values


class RetrievalFolderDataModule(FolderDataModule):
    """``data=retrieval_folder``: embeddings of the user's images (see the module's docstring).

    Training batches are P x K (:class:`datasets.retrieval.PKBatchSampler`, through the very
    loader of :class:`~datasets.retrieval.RetrievalDataModule`); validation and test batches of
    ``eval_batch_size`` feed the retrieval metrics, which rank the whole split.
    """

    task = "retrieval"
    name = "retrieval_folder"
    num_outputs = None  # the embedding size is the model's choice, not the data's

    def __init__(
        self,
        root: str,
        channels: int | None = None,
        image_size: int | None = None,
        classes: Sequence[str] | None = None,
        test_classes: float = 0.5,
        split_seed: int = 0,
        resample: str = "bilinear",
        p: int = 16,
        k: int = 4,
        eval_batch_size: int = 128,
        num_workers: int = 0,
        cache_dir: str = DEFAULT_CACHE_DIR,
        max_memory: float = DEFAULT_MAX_MEMORY,
    ) -> None:
        check_range(self.name, "p", p, 2)
        check_range(self.name, "k", k, 2)
        if isinstance(test_classes, float):
            check_range(
                self.name, "test_classes", test_classes, 0.0, 1.0, low_open=True, high_open=True
            )
        super().__init__(
            root,
            channels,
            image_size,
            classes,
            resample,
            p * k,
            eval_batch_size,
            num_workers,
            cache_dir,
            max_memory,
        )
        self.test_classes = test_classes
        self.split_seed = split_seed
        self.p, self.k = p, k

    def split_index(self, names: list[str], listings: dict, labels: Tensor) -> dict[str, Tensor]:
        """Each split's indices into the listings concatenated (train, val, test)."""
        if len(listings) == 1:  # class folders: disjoint train and held-out classes
            held_out = held_out_classes(len(names), self.test_classes, self.split_seed, self.name)
            is_held_out = torch.isin(labels, held_out)
            train, rest = (~is_held_out).nonzero().squeeze(1), is_held_out.nonzero().squeeze(1)
            val, test = halve_per_class(
                rest, labels, self.split_seed, self.name, [self.root / n for n in names]
            )
            return {"train": train, "val": val, "test": test}
        sizes = [len(listing.files) for listing in listings.values()]
        ranges = torch.arange(sum(sizes)).split(sizes)
        index = dict(zip(listings, ranges, strict=True))
        if "val" not in index:
            index["val"], index["test"] = halve_per_class(
                index["test"],
                labels,
                self.split_seed,
                self.name,
                [self.root / "test" / n for n in names],
            )
        return index

    def build_splits(self) -> tuple[TensorBatches | StreamedImages, ...]:
        names, listings = list_layout(self.check_root(), self.name, self.classes, every_split=True)
        files, labels, images, decoding = self.read_listed(names, listings)
        index = self.split_index(names, listings, labels)
        if labels[index["train"]].unique().numel() < 2:
            raise DataError(
                f"{self.name}: the training split of {self.root} holds one class; "
                "P x K batches need two"
            )
        return tuple(self.split(images, files, labels, index[s], decoding, to_unit) for s in SPLITS)

    @property
    def data_stats(self) -> dict:
        return {"class_counts": self.train_class_counts(self.num_classes)}

    # P x K batches, capped at the classes the training split holds: the built-in's loader
    train_dataloader = RetrievalDataModule.train_dataloader
