"""VBench dimensions (Vchitect/VBench 0.1.5 conventions), one module per family.

* :mod:`.common` -- reading videos like VBench, the per-dimension base class, shared helpers;
* :mod:`.flicker` -- ``temporal_flickering`` (native numpy, no network);
* :mod:`.motion` -- RAFT static filter, ``dynamic_degree``, ``motion_smoothness`` (AMT-S);
* :mod:`.naming` -- ``{prompt}-{index}.mp4`` names, the prompt suite, scoring a VBench-style folder;
* :mod:`.long` -- VBench-Long clip splitting and slow-fast consistency;
* the other dimensions: consistency, clip_dims, viclip_dims, quality_dims, semantic_dims.

Totals (Quality, Semantic, Total) are in :mod:`omnieval.aggregate.vbench`.  Attributes are imported lazily so
that ``import omnieval.metrics.vbench`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "temporal_flickering": "omnieval.metrics.vbench.flicker",
    "temporal_flickering_per_video": "omnieval.metrics.vbench.flicker",
    "dynamic_degree": "omnieval.metrics.vbench.motion",
    "motion_smoothness": "omnieval.metrics.vbench.motion",
    "static_filter": "omnieval.metrics.vbench.motion",
    "DIMENSIONS": "omnieval.metrics.vbench.common",
    "read_video_cv2": "omnieval.metrics.vbench.common",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
