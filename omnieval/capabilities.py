"""The capability table: what a model can be asked to do, in one place.

Every fact about a capability lives in its :class:`Capability` record: the model method that serves it, the
kind of input media a request carries, the kind of output the model returns, and whether think mode applies.
Config validation, planning, the generation adapter, the models (including ``predictions``) and
``omnieval ls`` all read :data:`CAPABILITIES`; nothing else lists capabilities.

Media kinds: ``"image"`` is a uint8 ``H x W x 3`` RGB array, ``"video"`` a :class:`~omnieval.media.Video`,
``"text"`` a ``str``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omnieval.errors import UnknownNameError

MediaKind = Literal["image", "video", "text"]


@dataclass(frozen=True)
class Capability:
    """One capability of the table."""

    name: str
    """Name used in task YAML (``capability: t2v``)."""
    method: str
    """Model method that serves it; it takes ``list[Request]`` and returns one output per request."""
    inputs: tuple[MediaKind, ...]
    """Kinds of input media a request may carry (empty: a prompt only)."""
    output: MediaKind
    """Kind of output the model returns."""
    think: bool
    """Whether think mode (reason over the prompt before generating) applies."""
    description: str = ""

    @property
    def takes_media(self) -> bool:
        return bool(self.inputs)


CAPABILITIES: dict[str, Capability] = {c.name: c for c in (
    Capability("understand", "understand", ("image", "video"), "text", False,
               "answer a question about an image or a video"),
    Capability("t2i", "generate_image", (), "image", True, "text to image"),
    Capability("t2v", "generate_video", (), "video", True, "text to video"),
    Capability("long_video", "generate_video", (), "video", True, "text to long video (more frames or segments)"),
    Capability("edit_image", "edit_image", ("image",), "image", True, "instruction-based image editing"),
    Capability("edit_video", "edit_video", ("video",), "video", True, "instruction-based video editing"),
)}

#: the model methods, one per distinct capability method
MODEL_METHODS: tuple[str, ...] = tuple(dict.fromkeys(c.method for c in CAPABILITIES.values()))


def capability(name: str) -> Capability:
    """The record of ``name``; an unknown name is an :class:`~omnieval.errors.UnknownNameError`."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        raise UnknownNameError("capability", name, list(CAPABILITIES)) from None
