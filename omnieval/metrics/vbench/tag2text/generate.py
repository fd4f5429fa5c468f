"""Beam search as transformers 4.33's ``generate`` runs it for Tag2Text's caption decoder.

Tag2Text calls ``text_decoder.generate(input_ids=prompt, max_length=30, min_length=10, num_beams=3,
eos_token_id=[SEP], pad_token_id=[PAD], repetition_penalty=1.0, ...)`` on a decoder-only model with default
generation settings otherwise (``length_penalty=1.0``, ``early_stopping=False``, one returned sequence).  This
module reproduces that path (``GenerationMixin.beam_search`` + ``BeamSearchScorer`` + ``BeamHypotheses``):

* every prompt row is repeated ``num_beams`` times; beam scores start at 0 for the first beam and -1e9 for the
  others (float32);
* each step: ``log_softmax`` of the last position's logits; processors in transformers' order — repetition
  penalty (only when != 1.0: gathered scores < 0 are multiplied by it, others divided), then min length (while
  the sequence, prompt included, is shorter than ``min_length`` the EOS score is -inf); add the beam scores;
  ``topk`` of ``2 * num_beams`` over ``num_beams * vocab`` per item (sorted);
* candidates in rank order: an EOS candidate ranked within the first ``num_beams`` closes a hypothesis (the
  sequence *without* the EOS, scored ``sum_logprobs / len(sequence) ** length_penalty``); other candidates fill
  the ``num_beams`` running beams; the hypothesis list keeps the ``num_beams`` best (ties: the earliest added
  is dropped first);
* an item is done when it holds ``num_beams`` hypotheses and (``early_stopping=False``) its worst one is at
  least ``best candidate score / (current length + 1) ** length_penalty``; a done item's rows continue as
  copies of row 0 plus PAD (their output is already fixed);
* stop when every item is done or the sequences reach ``max_length`` (prompt included); then the running beams
  of unfinished items are added as hypotheses, the best of each item is returned, and rows are padded with PAD
  after one EOS (an EOS is appended when the best hypothesis is shorter than the longest, capped at
  ``max_length``).

Scores are float32 tensors; hypothesis scores are Python floats, as in transformers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BeamSettings:
    eos_token_id: int
    pad_token_id: int
    num_beams: int = 3
    max_length: int = 30
    min_length: int = 10
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    early_stopping: bool = False


class Hypotheses:
    """The ``num_beams`` best finished sequences of one item (transformers' ``BeamHypotheses``)."""

    def __init__(self, num_beams: int, length_penalty: float, early_stopping: bool):
        self.num_beams, self.length_penalty, self.early_stopping = num_beams, length_penalty, early_stopping
        self.beams: list[tuple[float, torch.Tensor]] = []
        self.worst_score = 1e9

    def add(self, tokens: torch.Tensor, sum_logprobs: float) -> None:
        score = sum_logprobs / (tokens.shape[-1] ** self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self.beams) > self.num_beams:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        if len(self.beams) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        return self.worst_score >= best_sum_logprobs / cur_len**self.length_penalty

    def best(self) -> torch.Tensor:
        return sorted(self.beams, key=lambda beam: beam[0])[-1][1]


def _process_scores(input_ids: torch.Tensor, scores: torch.Tensor, settings: BeamSettings) -> torch.Tensor:
    if settings.repetition_penalty != 1.0:
        seen = torch.gather(scores, 1, input_ids)
        seen = torch.where(seen < 0, seen * settings.repetition_penalty, seen / settings.repetition_penalty)
        scores.scatter_(1, input_ids, seen)
    if input_ids.shape[-1] < settings.min_length:
        scores[:, settings.eos_token_id] = -float("inf")
    return scores


def beam_search(next_logits: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], prompt_ids: torch.Tensor,
                settings: BeamSettings) -> torch.Tensor:
    """Best sequence per prompt row (``[B, L]``, prompt included, PAD-padded), see the module docstring.

    ``next_logits(input_ids [B * num_beams, L], parent_rows) -> [B * num_beams, vocab]`` gives the last position's
    logits; row ``b * num_beams + k`` is beam ``k`` of item ``b``; ``parent_rows`` (``None`` at the first step)
    are the rows of the previous ``input_ids`` the current rows extend (for a cache)."""
    nb = settings.num_beams
    if nb < 2:
        raise ValueError(f"beam search needs num_beams >= 2, got {nb}")
    batch = prompt_ids.shape[0]
    input_ids = prompt_ids.repeat_interleave(nb, dim=0)
    beam_scores = torch.zeros((batch, nb), dtype=torch.float32, device=input_ids.device)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view(-1)
    hyps = [Hypotheses(nb, settings.length_penalty, settings.early_stopping) for _ in range(batch)]
    done = [False] * batch
    parent_rows: torch.Tensor | None = None
    while True:
        scores = torch.log_softmax(next_logits(input_ids, parent_rows), dim=-1)
        scores = _process_scores(input_ids, scores, settings) + beam_scores[:, None].expand_as(scores)
        vocab = scores.shape[-1]
        top_scores, top_ids = torch.topk(scores.view(batch, nb * vocab), 2 * nb, dim=1, largest=True, sorted=True)
        top_beams = torch.div(top_ids, vocab, rounding_mode="floor")
        top_tokens = top_ids % vocab

        next_scores = torch.zeros((batch, nb), dtype=top_scores.dtype, device=input_ids.device)
        next_tokens = torch.zeros((batch, nb), dtype=top_tokens.dtype, device=input_ids.device)
        next_rows = torch.zeros((batch, nb), dtype=top_beams.dtype, device=input_ids.device)
        cur_len = input_ids.shape[-1] + 1
        for b in range(batch):
            if done[b]:
                next_tokens[b, :] = settings.pad_token_id
                continue
            filled = 0
            for rank, (token, score, beam) in enumerate(zip(top_tokens[b], top_scores[b], top_beams[b])):
                row = b * nb + beam
                if token.item() == settings.eos_token_id:
                    if rank < nb:
                        hyps[b].add(input_ids[row].clone(), score.item())
                else:
                    next_scores[b, filled], next_tokens[b, filled], next_rows[b, filled] = score, token, row
                    filled += 1
                if filled == nb:
                    break
            done[b] = done[b] or hyps[b].is_done(top_scores[b].max().item(), cur_len)

        beam_scores = next_scores.view(-1)
        parent_rows = next_rows.view(-1)
        input_ids = torch.cat([input_ids[parent_rows, :], next_tokens.view(-1, 1)], dim=-1)
        if all(done) or input_ids.shape[-1] >= settings.max_length:
            break

    for b in range(batch):
        if not done[b]:
            for k in range(nb):
                hyps[b].add(input_ids[b * nb + k], beam_scores[b * nb + k].item())
    best = [h.best() for h in hyps]
    lengths = [len(seq) for seq in best]
    width = min(max(lengths) + 1, settings.max_length)
    out = input_ids.new_full((batch, width), settings.pad_token_id)
    for b, seq in enumerate(best):
        out[b, : len(seq)] = seq
        if len(seq) < width:
            out[b, len(seq)] = settings.eos_token_id
    return out
