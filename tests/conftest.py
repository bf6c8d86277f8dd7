"""Shared test fixtures: where the LatentSync parity data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def parity_root() -> Path:
    """The upstream parity fixtures, read in place (never copied into the repo)."""
    return Path(os.environ.get("LSRAY_PARITY_FIXTURES", REPO.parent / "shared" / "fixtures" / "latentsync"))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    root = parity_root()
    if not (root / "unet_small" / "config.json").is_file():
        pytest.fail(f"LatentSync parity fixtures not found at {root} (set LSRAY_PARITY_FIXTURES)")
    return root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, parity_dir: Path) -> Path:
    """A converted lsray bundle of the small parity UNet + Whisper and a tiny random VAE
    (LatentSync's mask), built once per session; load it with ``lsray.models.load_bundle``."""
    from bundles import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny", parity_dir)
