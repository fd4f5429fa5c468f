"""Omni-Video (arXiv 2507.06119), natively in ``transformers`` + ``diffusers``.

Import-light on purpose: submodules import torch.  The MLLM lives in :mod:`.mllm`
(:class:`~omnieval.models.omnivideo.mllm.OmniMLLM`, :class:`~omnieval.models.omnivideo.mllm.MLLMConfig`),
its chat/think conventions in :mod:`.chat`, offline tiny tokenizers in :mod:`.tokenizers`.
"""
