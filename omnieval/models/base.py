"""The model interface: capabilities, outputs and identity.

A model is a class registered with :func:`omnieval.registry.register_model`, built with
``Model.from_args(**model_args)`` (``--model_args k=v,...``), that implements any subset of:

* ``understand(media, questions, **gen) -> list[str]``  (media: images or :class:`~omnieval.media.Video`)
* ``generate_image(prompts, think, **gen) -> list[image]``
* ``generate_video(prompts, think, **gen) -> list[Video]``  (long video: the same, with more frames)
* ``edit_image(images, instructions, think, **gen) -> list[image]``
* ``edit_video(videos, instructions, think, **gen) -> list[Video]``

Images are uint8 ``H x W x 3`` RGB arrays; videos are :class:`~omnieval.media.Video`.  A method may
instead return :class:`Generation` objects to attach per-sample information (e.g. the prompt rewritten by
think mode, the task the model routed to) -- the runner stores it in the sample record.

``gen`` always carries ``seeds`` (one int per request) and the task's generation settings (``height``,
``width``, ``num_frames``, ``fps``, ``num_inference_steps``, ``guidance_scale``, ...), plus ``doc_ids``,
``sample_indices`` and ``task`` for models that look outputs up rather than generate them.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

CAPABILITY_METHODS: dict[str, str] = {
    "understand": "understand",
    "t2i": "generate_image",
    "t2v": "generate_video",
    "long_video": "generate_video",
    "edit_image": "edit_image",
    "edit_video": "edit_video",
}
CAPABILITIES = tuple(CAPABILITY_METHODS)
#: capabilities that accept ``think``
THINKING_CAPABILITIES = ("t2i", "t2v", "long_video", "edit_image", "edit_video")


@dataclass
class Generation:
    """One output plus information to keep in the sample record."""

    output: Any
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two runs' outputs comparable: name, arguments and a fingerprint of the weights."""

    name: str
    args: dict[str, Any]
    fingerprint: str

    def key(self) -> str:
        payload = json.dumps({"name": self.name, "args": self.args, "fingerprint": self.fingerprint}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Model:
    """Base class.  Subclasses set ``capabilities`` and implement the matching methods."""

    capabilities: ClassVar[tuple[str, ...]] = ()
    #: whether generation methods honour ``think=True``; if not, think-on work items are not planned
    supports_think: ClassVar[bool] = True
    #: arguments (from ``--model_args``) that change outputs; others (device, batch size) do not
    output_irrelevant_args: ClassVar[tuple[str, ...]] = ("device", "batch_size", "offload", "num_workers")

    def __init__(self, **kwargs: Any):
        self.args = dict(kwargs)

    @classmethod
    def known_args(cls) -> frozenset[str] | None:
        """The ``--model_args`` keys this model understands: its constructor's named parameters plus
        :attr:`output_irrelevant_args`.  ``None`` (a constructor with no named parameters) accepts any key."""
        named = {
            name
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        return frozenset(named | set(cls.output_irrelevant_args)) if named else None

    @classmethod
    def check_args(cls, args: dict[str, Any]) -> None:
        """Refuse keys the model would silently ignore (a misspelt setting would otherwise change nothing and
        still be recorded as if it had): a one-line :class:`~omnieval.errors.ConfigError` naming the key."""
        import difflib

        from omnieval.errors import ConfigError

        known = cls.known_args()
        if known is None:
            return
        for key in args:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                name = getattr(cls, "registry_name", cls.__name__)
                raise ConfigError(f"model {name!r} has no argument {key!r} (--model_args){hint} known: {', '.join(sorted(known))}")

    @classmethod
    def from_args(cls, **kwargs: Any) -> "Model":
        return cls(**kwargs)

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    @classmethod
    def fingerprint_from_args(cls, **kwargs: Any) -> str:
        """A stable hash of the weights the arguments point at, computed WITHOUT building the model (the runner
        uses it to find finished work before deciding to load anything).  Override for checkpoints, e.g.
        ``quick_fingerprint(files)``; the default says the outputs depend on the arguments only."""
        return "args-only"

    def checkpoint_fingerprint(self) -> str:
        return type(self).fingerprint_from_args(**self.args)

    @classmethod
    def identity_from_args(cls, **kwargs: Any) -> ModelIdentity:
        name = getattr(cls, "registry_name", cls.__name__)
        relevant = {k: v for k, v in sorted(kwargs.items()) if k not in cls.output_irrelevant_args}
        return ModelIdentity(name, relevant, cls.fingerprint_from_args(**kwargs))

    def identity(self) -> ModelIdentity:
        return type(self).identity_from_args(**self.args)

    def close(self) -> None:
        """Release resources (GPU memory, files)."""


def quick_fingerprint(paths, sample_bytes: int = 1 << 20) -> str:
    """Fingerprint of weight files: relative name, size, and sha256 of the first and last ``sample_bytes``.

    Hashing whole multi-GB checkpoints on every resume would cost minutes; size plus head and tail catches
    a different or truncated file.  Use full sha256 (``omnieval weights --verify``) to prove identity.
    """
    import os
    from pathlib import Path

    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as f:
            h.update(f.read(sample_bytes))
            if size > 2 * sample_bytes:
                f.seek(-sample_bytes, os.SEEK_END)
                h.update(f.read(sample_bytes))
    return h.hexdigest()[:16]
