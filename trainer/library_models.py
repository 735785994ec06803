"""Models built by libraries of the ecosystem: ``model=timm`` (any timm classifier, or an
L2-normalised embedding head on retrieval data) and ``model=smp`` (segmentation_models_pytorch
encoder-decoders for segmentation and restoration).

Each class takes the project's parameter names (``in_channels``, ``num_outputs``, ``image_size``,
``task``), which ``trainer.config.instantiate_with_data`` fills from the data, and calls its library
with the library's own names. The libraries are imported when a model is built, never when this
module is: importing timm takes seconds (smp imports timm too), which a run of the project's own
models must not pay. ``tasks`` says which data a model fits; ``trainer.config.check_model_fits``
refuses the others in one line before anything is built.
"""

import difflib
import inspect
import re
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_task(library: str, task: str | None, tasks: tuple[str, ...]) -> None:
    if task not in tasks:
        raise ValueError(f"{library}: fits tasks {', '.join(tasks)}, not task {task}")


def _check_images(library: str, in_channels: int | None) -> None:
    if in_channels is None:
        raise ValueError(f"{library}: expected image data (in_channels), got rows without channels")


def _close_names(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    return ", ".join(close) if close else "none"


def _unknown_timm_model(library: str, name: str) -> ValueError:
    """The one line for a name timm does not know, with close names and the pattern that lists
    the family (``resnet1800`` -> ``timm.list_models('*resnet*')``)."""
    import timm

    family = re.match(r"[a-z]*", name.lower()).group() or name
    return ValueError(
        f"{library}: unknown timm model {name!r}; close names: "
        f"{_close_names(name, timm.list_models())}; more: timm.list_models('*{family}*')"
    )


def _check_outputs(
    library: str,
    model: nn.Module,
    in_channels: int,
    image_size: int | None,
    expected: tuple,
    fix: str = "",
) -> None:
    """One forward pass of zeros at build time, in eval mode (BatchNorm statistics untouched, no
    random numbers drawn): a pairing the library cannot serve (an input too small, outputs of
    another size) fails here in one line, ``fix`` appended, instead of as a shape crash in the
    loss."""
    if image_size is None:
        return  # the data give no fixed size to try
    inputs = torch.zeros(2, in_channels, image_size, image_size)
    model.eval()
    try:
        with torch.no_grad():
            shape = tuple(model(inputs).shape)
    except (RuntimeError, AssertionError) as error:  # timm's ViTs assert their input size
        first_line = " ".join(str(error).split())[:300].rstrip(".")
        raise ValueError(
            f"{library}: cannot take {image_size}x{image_size} images: {first_line}{fix}"
        ) from None
    finally:
        model.train()
    if shape != (2, *expected):
        raise ValueError(
            f"{library}: gives outputs of shape {list(shape[1:])} for "
            f"{image_size}x{image_size} images, expected {list(expected)}"
        )


class TimmModel(nn.Module):
    """``model=timm``: ``timm.create_model(name, pretrained, num_classes, in_chans)``.

    Classification data: ``num_outputs`` logits (the classes). Retrieval data, which leave the
    width to the model: ``embedding_size`` outputs, L2-normalised as ``EmbedCNN``'s, so distances
    lie in [0, 2]. ``extra`` goes to ``timm.create_model`` as more keyword arguments.
    """

    tasks: ClassVar[tuple[str, ...]] = ("classification", "retrieval")

    def __init__(
        self,
        name: str,
        in_channels: int | None = None,
        task: str | None = None,
        num_outputs: int | None = None,
        embedding_size: int = 64,
        pretrained: bool = False,
        image_size: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import timm  # here, not at import: seconds that a run of another model must not pay

        _check_task("timm", task, self.tasks)
        _check_images("timm", in_channels)
        self.embedding = task == "retrieval"
        if self.embedding and num_outputs is not None:
            raise ValueError(
                f"timm: on retrieval data the embedding's size is model.embedding_size "
                f"({embedding_size}); num_outputs={num_outputs} counts classes"
            )
        width = embedding_size if self.embedding else num_outputs
        if width is None:
            raise ValueError("timm: expected num_outputs (the classes) from the data, got none")
        if not timm.is_model(name):
            raise _unknown_timm_model("timm", name)
        self.net = timm.create_model(
            name, pretrained=pretrained, num_classes=width, in_chans=in_channels, **(extra or {})
        )
        # a ViT is built for 224 px unless told otherwise
        fix = f"; a model built for one size takes +model.extra.img_size={image_size}"
        _check_outputs(f"timm {name}", self, in_channels, image_size, (width,), fix)

    def forward(self, x: Tensor) -> Tensor:
        outputs = self.net(x)
        return F.normalize(outputs, dim=1) if self.embedding else outputs


def _decoder_widths(architecture: type, encoder_depth: int, extra: dict[str, Any]) -> dict:
    """``decoder_channels`` for an architecture that takes one width per decoder block (Unet,
    UnetPlusPlus, MAnet), which must be ``encoder_depth`` long: its default list's last
    ``encoder_depth`` widths (all five at the default depth), so each resolution keeps its
    default width (at depth 3 the blocks at 1/4, 1/2 and full size keep 64, 32, 16) and the head
    its 16 channels."""
    parameter = inspect.signature(architecture).parameters.get("decoder_channels")
    default = None if parameter is None else parameter.default
    if "decoder_channels" in extra or not isinstance(default, list | tuple):
        return {}
    return {"decoder_channels": list(default)[-encoder_depth:]}


def _check_divisible(net: nn.Module, label: str, image_size: int | None, depth: int) -> None:
    """smp's own condition (``requires_divisible_input_shape``, the encoder's ``output_stride``),
    checked at build time with the fix in the message."""
    if image_size is None or not net.requires_divisible_input_shape:
        return
    stride = net.encoder.output_stride
    if image_size % stride:
        fitting_depths = [d for d in range(1, depth) if image_size % 2**d == 0]
        depth_fix = f" or model.encoder_depth={fitting_depths[-1]}" if fitting_depths else ""
        raise ValueError(
            f"smp: image_size {image_size} is not divisible by {stride}, the output stride of "
            f"{label}; set data.image_size={(image_size // stride + 1) * stride}{depth_fix}"
        )


class SmpModel(nn.Module):
    """``model=smp``: ``smp.create_model(arch, encoder_name, encoder_weights, in_channels,
    classes)`` with ``encoder_depth``.

    Segmentation data: ``num_outputs`` logits per pixel (one, as ``model=unet``). Restoration
    data: as many output channels as input ones, added to the input (the network predicts the
    correction, as ``model=denoise_unet``). ``extra`` goes to the architecture as more keyword
    arguments (``decoder_attention_type``, ...).
    """

    tasks: ClassVar[tuple[str, ...]] = ("segmentation", "restoration")

    def __init__(
        self,
        arch: str = "Unet",
        encoder: str = "resnet18",
        in_channels: int | None = None,
        num_outputs: int | None = None,
        task: str | None = None,
        image_size: int | None = None,
        encoder_depth: int = 5,
        encoder_weights: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp  # here, not at import (it imports timm)

        _check_task("smp", task, self.tasks)
        _check_images("smp", in_channels)
        self.residual = task == "restoration"
        if self.residual and num_outputs != in_channels:
            raise ValueError(
                f"smp: a restoration output has the input's {in_channels} channels, "
                f"got num_outputs={num_outputs}"
            )
        architectures = smp.MODEL_ARCHITECTURES_MAPPING
        if arch.lower() not in architectures:
            names = sorted(cls.__name__ for cls in architectures.values())
            raise ValueError(f"smp: unknown arch {arch!r}; choose one of: {', '.join(names)}")
        self._check_encoder(encoder, smp.encoders.get_encoder_names())
        architecture = architectures[arch.lower()]
        extra = dict(extra or {})
        self.net = architecture(
            encoder_name=encoder,
            encoder_depth=encoder_depth,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_outputs,
            **_decoder_widths(architecture, encoder_depth, extra),
            **extra,
        )
        label = f"{architecture.__name__} with encoder {encoder}, encoder_depth={encoder_depth}"
        _check_divisible(self.net, label, image_size, encoder_depth)
        _check_outputs(
            f"smp {label}", self, in_channels, image_size, (num_outputs,) + (image_size,) * 2
        )

    @staticmethod
    def _check_encoder(encoder: str, own_encoders: list[str]) -> None:
        """smp's own encoders, or any timm model as ``tu-<name>``."""
        if encoder.startswith("tu-"):
            import timm

            if not timm.is_model(encoder[3:]):
                raise _unknown_timm_model("smp", encoder[3:])
        elif encoder not in own_encoders:
            raise ValueError(
                f"smp: unknown encoder {encoder!r}; close names: "
                f"{_close_names(encoder, own_encoders)}; all: smp.encoders.get_encoder_names(), "
                "or any timm model as tu-<name>"
            )

    def forward(self, x: Tensor) -> Tensor:
        outputs = self.net(x)
        return x + outputs if self.residual else outputs
