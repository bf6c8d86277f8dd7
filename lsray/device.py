"""Device choice: CPU everywhere, CUDA when the machine has it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def default_device() -> torch.device:
    """Return ``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch ops on one intra-op thread, then restore the previous count.

    CPU reductions split across threads sum in a thread-count dependent order, so the same
    clip would give different bits on a 2-core laptop, a 4-CPU Ray actor and a 16-core Serve
    replica. The small models that feed the UNet (audio tokens, voice conversion) run this way,
    so every runner gives the UNet identical inputs. The UNet and VAE on 16-frame windows were
    measured thread-invariant; on the anchor pass's short keyframe sequences (3-8 frames) they
    are not (1e-6 apart, amplified along the keyframe chain), so on CPU the anchor pass runs
    this way too.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
