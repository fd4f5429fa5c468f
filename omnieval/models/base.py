"""The model interface: typed requests in, one output per request out.

A model is a class registered with :func:`omnieval.registry.register_model`, built with
``Model.from_args(**model_args)`` (``--model_args k=v,...``).  It declares the capabilities it serves in
``capabilities`` (names of :data:`omnieval.capabilities.CAPABILITIES`) and implements the matching methods,
each taking ``list[Request]`` and returning one output per request, in order -- lm-evaluation-harness's
``Instance`` + ``getattr(lm, request_type)(requests)``:

* ``understand(requests) -> list[str]``
* ``generate_image(requests) -> list[image]``
* ``generate_video(requests) -> list[Video]`` (``t2v`` and ``long_video``: same method, more frames)
* ``edit_image(requests) -> list[image]``
* ``edit_video(requests) -> list[Video]``

Images are uint8 ``H x W x 3`` RGB arrays; videos are :class:`~omnieval.media.Video`.  A method may instead
return :class:`Generation` objects to attach per-sample information (the prompt rewritten by think mode, the
task the model routed to); the runner stores it in the sample record.  A request's generation settings
(height, width, frames, fps, steps, guidance, decoding) are the task's :class:`~omnieval.config.GenerationSettings`;
``None`` means "the model's own default".
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omnieval.capabilities import Capability, capability
from omnieval.config import GenerationSettings
from omnieval.errors import CapabilityError


@dataclass(frozen=True)
class Request:
    """One thing a model is asked to do (one work item)."""

    capability: str
    """Name in the capability table (``t2v``, ``edit_image``, ...)."""
    prompt: str
    """The rendered prompt (the task's ``prompt_template`` applied to the doc)."""
    seed: int
    """Seed of this sample: the task's base seed + the sample index (think-on reuses the think-off seed)."""
    think: bool = False
    """Think mode: reason over (rewrite) the prompt before generating."""
    media: Any = None
    """Input image (uint8 ``H x W x 3``) or :class:`~omnieval.media.Video` of ``understand`` and edit requests."""
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    """The task's generation settings (``None`` fields: the model's default)."""
    task: str = ""
    """Task name (models that look outputs up, like ``predictions``, use it)."""
    doc_id: str = ""
    """Id of the doc within the task."""
    sample_index: int = 0
    """Index of this sample among the doc's samples."""

    def setting(self, name: str, default: Any = None) -> Any:
        """A generation setting: the named field when not ``None``, else ``settings.extra[name]``, else ``default``."""
        value = getattr(self.settings, name, None)
        if value is None:
            value = self.settings.extra.get(name)
        return default if value is None else value

    @property
    def what(self) -> str:
        """The request named for error messages."""
        return f"task {self.task} doc {self.doc_id} sample {self.sample_index} think {'on' if self.think else 'off'}"


def make_requests(cap: str, prompts: list[str], *, seeds: list[int] | None = None, think: bool = False,
                  media: list[Any] | None = None, task: str = "", **settings: Any) -> list[Request]:
    """Requests for calling a model directly (Python API, tests): one per prompt, seeds default to 0, 1, ...;
    ``settings`` are :class:`~omnieval.config.GenerationSettings` fields, anything else goes to its ``extra``."""
    names = {f.name for f in dataclasses.fields(GenerationSettings)}
    extra = {k: v for k, v in settings.items() if k not in names}
    gen = GenerationSettings(**{k: v for k, v in settings.items() if k in names}, extra=extra)
    seeds = list(range(len(prompts))) if seeds is None else list(seeds)
    media = [None] * len(prompts) if media is None else list(media)
    if not len(seeds) == len(media) == len(prompts):
        raise ValueError(f"{len(prompts)} prompts, {len(seeds)} seeds and {len(media)} media must be as many")
    capability(cap)  # an unknown name is an error
    return [Request(cap, p, int(s), think, m, gen, task, str(i), 0) for i, (p, s, m) in enumerate(zip(prompts, seeds, media))]


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
    #: how the model picks the frames of an input video (:meth:`Model.frame_sampling`); recorded, not part of the key
    #: (a task's ``frames:`` spec is in the task's generation hash, the model's own rule follows from its args)
    frames: str = ""

    def key(self) -> str:
        payload = json.dumps({"name": self.name, "args": self.args, "fingerprint": self.fingerprint}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Model:
    """Base class of every model.

    A subclass must set ``capabilities`` and implement the method of each (checked when the class is defined);
    it may override :meth:`from_args` (build from ``--model_args``), :meth:`fingerprint_from_args` (a cheap
    hash of the weights, computed before anything loads, so finished work is found without loading) and
    :meth:`close`.  Arguments in :attr:`output_irrelevant_args` (device, batch size) are left out of the identity.
    """

    capabilities: ClassVar[tuple[str, ...]] = ()
    #: whether generation methods honour ``Request.think``; if not, think-on work items are not planned
    supports_think: ClassVar[bool] = True
    #: arguments (from ``--model_args``) that change outputs; others (device, batch size) do not
    output_irrelevant_args: ClassVar[tuple[str, ...]] = ("device", "batch_size", "offload", "num_workers")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.capabilities:
            method = capability(name).method  # an unknown name fails here, at import
            if getattr(cls, method) is getattr(Model, method):
                raise TypeError(f"{cls.__name__} declares capability {name!r} but does not implement {method}(requests)")

    def __init__(self, **kwargs: Any):
        self.args = dict(kwargs)

    # -- the capability methods (each model implements those it declares) ------------------------
    def understand(self, requests: list[Request]) -> list[Any]:
        return self._lacks("understand")

    def generate_image(self, requests: list[Request]) -> list[Any]:
        return self._lacks("generate_image")

    def generate_video(self, requests: list[Request]) -> list[Any]:
        return self._lacks("generate_video")

    def edit_image(self, requests: list[Request]) -> list[Any]:
        return self._lacks("edit_image")

    def edit_video(self, requests: list[Request]) -> list[Any]:
        return self._lacks("edit_video")

    def _lacks(self, method: str):
        name = getattr(type(self), "registry_name", type(self).__name__)
        raise CapabilityError(f"model {name!r} has no {method}(); its capabilities: {', '.join(self.capabilities) or 'none'}")

    def serve(self, cap: Capability, requests: list[Request]) -> list[Any]:
        """Call the method of capability ``cap`` on ``requests``."""
        return getattr(self, cap.method)(requests)

    # -- construction and identity ----------------------------------------------------------------
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

    @classmethod
    def fingerprint_from_args(cls, **kwargs: Any) -> str:
        """A stable hash of the weights the arguments point at, computed WITHOUT building the model (the runner
        uses it to find finished work before deciding to load anything).  Override for checkpoints, e.g.
        ``quick_fingerprint(files)``; the default says the outputs depend on the arguments only."""
        return "args-only"

    def checkpoint_fingerprint(self) -> str:
        return type(self).fingerprint_from_args(**self.args)

    @classmethod
    def frame_sampling(cls, **kwargs: Any) -> str:
        """How the model picks the frames of an input video, for its identity.  Every model must use all the frames of
        a video a task's ``frames:`` spec sampled (:func:`omnieval.frames.is_task_sampled`); models that sample their
        own frames otherwise override this to say how (``hf-vlm``, ``omnivideo``)."""
        return "every frame of the input video"

    @classmethod
    def identity_from_args(cls, **kwargs: Any) -> ModelIdentity:
        name = getattr(cls, "registry_name", cls.__name__)
        relevant = {k: v for k, v in sorted(kwargs.items()) if k not in cls.output_irrelevant_args}
        frames = cls.frame_sampling(**kwargs) if "understand" in cls.capabilities else ""
        return ModelIdentity(name, relevant, cls.fingerprint_from_args(**kwargs), frames)

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


__all__ = ["Generation", "Model", "ModelIdentity", "Request", "make_requests", "quick_fingerprint"]
