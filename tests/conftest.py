"""Shared test set-up: offline hub, private weight/cache dirs, deterministic threads."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_weights_dir(tmp_path_factory, monkeypatch):
    """No test may see the user's real weight cache: weights come from files the tests make."""
    monkeypatch.setenv("OMNIEVAL_WEIGHTS_DIR", str(tmp_path_factory.getbasetemp() / "weights"))
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "vbench_cache"))
