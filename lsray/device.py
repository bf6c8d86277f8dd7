"""Device choice: CPU everywhere, CUDA when the machine has it."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """Return ``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
