"""LLM / VLM judges through OpenAI-compatible chat endpoints.

* :mod:`omnieval.judge.client` -- :class:`JudgeClient` (deadline per call, retries with backoff, reply cache,
  thread pool) and :class:`JudgeSettings`;
* :mod:`omnieval.judge.transport` -- one HTTP POST with a wall-clock deadline;
* :mod:`omnieval.judge.cache` -- the on-disk reply cache under the run's output folder;
* :mod:`omnieval.judge.messages` -- chat messages, including images as base64 PNG data URLs;
* :mod:`omnieval.judge.templates` -- prompt templates (data in ``templates.yaml``);
* :mod:`omnieval.judge.reviews` -- reading the judge's Python-dict replies, with range checks.

The metrics that use them are in :mod:`omnieval.metrics.judge`.  Typical use from another metric::

    from omnieval.judge import JudgeClient, JudgeSettings, JudgeCache, InvalidReply, user_message

    client = JudgeClient(JudgeSettings(base_url=url, model="Qwen/Qwen2.5-VL-72B-Instruct-AWQ", api_key_env="",
                                       temperature=0.1, max_tokens=512, workers=8),
                         cache=JudgeCache(run_dir / "judge_cache"))
    replies = client.chat_many([[user_message(source_rgb, edited_rgb, prompt)] for ...], accept=parse)
    # reply.failed -> mark the contribution with omnieval.metrics.base.RETRY (asked again next run)
"""
from omnieval.judge.cache import JudgeCache, request_key
from omnieval.judge.client import InvalidReply, JudgeClient, JudgeReply, JudgeSettings
from omnieval.judge.messages import (
           bytes_part,
           encode_image,
           image_part,
           message,
           system_message,
           text_part,
           user_message,
)
from omnieval.judge.templates import PromptTemplate, get_template, templates

__all__ = [
           "InvalidReply",
           "JudgeCache",
           "JudgeClient",
           "JudgeReply",
           "JudgeSettings",
           "PromptTemplate",
           "bytes_part",
           "encode_image",
           "get_template",
           "image_part",
           "message",
           "request_key",
           "system_message",
           "templates",
           "text_part",
           "user_message",
]
