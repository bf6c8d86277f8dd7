"""Phoneme error rate (PER) of a CTC phoneme recogniser, and the greedy CTC decode it scores.

PER is the corpus-level edit distance over the corpus-level reference length: the Levenshtein
distances (substitutions + deletions + insertions) of all utterances summed, divided by the sum
of their reference lengths. Summing before dividing weighs every phoneme equally (a per-utterance
mean would let short utterances count as much as long ones). It can exceed 1 (insertions).
Symbols are anything comparable with ``==`` (vocabulary indices or phoneme strings).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


def ctc_greedy_decode(ids: Sequence[int], blank: int = 0) -> list[int]:
    """Best-path CTC decode of per-frame argmax ids: collapse repeats, then drop blanks.

    ``[0, 3, 3, 0, 3, 5, 5]`` -> ``[3, 3, 5]`` (a blank between two 3s keeps both).
    """
    out: list[int] = []
    prev = None
    for i in ids:
        i = int(i)
        if i != prev and i != blank:
            out.append(i)
        prev = i
    return out


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit costs) between two symbol sequences, O(len(ref) * len(hyp))."""
    prev = list(range(len(hyp) + 1))  # distances of ref[:0] to every prefix of hyp
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))  # deletion, insertion, substitution
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class PERResult:
    """Corpus PER and the counts it is made of (what ``eval.json`` records)."""

    per: float
    errors: int  # summed edit distance
    phonemes: int  # summed reference length
    utterances: int

    def as_dict(self) -> dict[str, float | int]:
        return {"per": self.per, "errors": self.errors, "phonemes": self.phonemes, "utterances": self.utterances}


def phoneme_error_rate(refs: Sequence[Sequence[Hashable]], hyps: Sequence[Sequence[Hashable]]) -> PERResult:
    """Corpus PER of hypotheses against references (paired by position)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    phonemes = sum(len(r) for r in refs)
    if phonemes == 0:
        raise ValueError("the references hold no phonemes: PER is undefined")
    return PERResult(errors / phonemes, errors, phonemes, len(refs))
