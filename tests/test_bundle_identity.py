"""A bundle's identity follows its content (lsray.bundle.identity), hashed once per file version
(lsray.storage.digest); a broken digest cache never fails anything. Bundles here are a config,
two small safetensors files and a mask: the identity reads bytes, it never loads a model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import lsray.storage.digest as digest
from lsray.bundle.config import BundleConfig, VoiceDefaults
from lsray.bundle.identity import model_id
from lsray.errors import MissingWeightError
from bundles import nudge_weight


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"conv.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
            "conv.bias": rng.standard_normal(8).astype(np.float32)}


def _bundle(dst: Path, config: BundleConfig | None = None) -> Path:
    (dst / "whisper").mkdir(parents=True)
    (config or BundleConfig()).write(dst / "config.json")
    save_file(_weights(0), str(dst / "unet.safetensors"))
    save_file(_weights(1), str(dst / "whisper" / "model.safetensors"))
    (dst / "mask.png").write_bytes(b"\x89PNG fake mask")
    return dst


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(digest.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names whose content is read (hashed), in order."""
    calls: list[str] = []
    real = digest.sha256_file

    def counting(path):
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(digest, "sha256_file", counting)
    return calls


def test_id_follows_weight_content_not_size_or_place(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "a" / "tiny")
    first = model_id(bundle)
    assert first.startswith("tiny:") and model_id(bundle) == first  # unchanged bundle: same id
    copy = shutil.copytree(bundle, tmp_path / "b" / "tiny")  # another place, new mtimes: same bytes, same id
    assert model_id(copy) == first

    size = (copy / "unet.safetensors").stat().st_size
    nudge_weight(copy / "unet.safetensors")
    assert (copy / "unet.safetensors").stat().st_size == size
    retrained = model_id(copy)
    assert retrained != first and model_id(bundle) == first


@pytest.mark.parametrize("change", ["mask", "voice_pth", "vae_config", "new_bin"])
def test_every_file_that_shapes_outputs_counts(tmp_path: Path, change: str) -> None:
    bundle = _bundle(tmp_path / "tiny")
    before = model_id(bundle)
    (bundle / ".lsray-source.json").write_text("{}")  # the S3 sync's bookkeeping: not part of the model
    (bundle / ".DS_Store").write_bytes(b"\0")
    assert model_id(bundle) == before
    if change == "mask":
        (bundle / "mask.png").write_bytes(b"\x89PNG other mask")
    elif change == "voice_pth":
        (bundle / "voice").mkdir()
        (bundle / "voice" / "model.pth").write_bytes(b"torch pickle")
    elif change == "vae_config":
        (bundle / "vae").mkdir()
        (bundle / "vae" / "config.json").write_text('{"latent_channels": 4}')
    else:
        (bundle / "whisper" / "pytorch_model.bin").write_bytes(b"weights")
    assert model_id(bundle) != before


def test_voice_model_dir_outside_the_bundle_counts(tmp_path: Path) -> None:
    voice = tmp_path / "voices" / "freevc"
    bundle = _bundle(tmp_path / "tiny", BundleConfig(voice=VoiceDefaults(backend="freevc", model_dir=str(voice))))
    absent = model_id(bundle)
    voice.mkdir(parents=True)
    (voice / "model.pth").write_bytes(b"v1")
    present = model_id(bundle)
    (voice / "model.pth").write_bytes(b"v2")
    assert len({absent, present, model_id(bundle)}) == 3


def test_digests_are_cached_until_a_file_changes(tmp_path: Path, cache_dir: Path, hashed: list[str]) -> None:
    bundle = _bundle(tmp_path / "tiny")
    first = model_id(bundle)
    assert sorted(hashed) == ["config.json", "mask.png", "model.safetensors", "unet.safetensors"]
    assert (cache_dir / digest.DIGEST_CACHE_FILE).is_file()

    hashed.clear()
    assert model_id(bundle) == first and hashed == []  # nothing read again

    unet = bundle / "unet.safetensors"
    st = unet.stat()
    os.utime(unet, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched: same bytes, new mtime
    assert model_id(bundle) == first and hashed == ["unet.safetensors"]

    hashed.clear()
    nudge_weight(unet)
    assert model_id(bundle) != first and hashed == ["unet.safetensors"]


@pytest.mark.parametrize("junk", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'{"format": 1, "files": {"x": 3}}', b""])
def test_corrupt_cache_is_ignored_and_rewritten(tmp_path: Path, cache_dir: Path, hashed: list[str], junk: bytes) -> None:
    bundle = _bundle(tmp_path / "tiny")
    first = model_id(bundle)
    (cache_dir / digest.DIGEST_CACHE_FILE).write_bytes(junk)
    hashed.clear()
    assert model_id(bundle) == first and len(hashed) == 4  # hashed again, same answer
    cached = json.loads((cache_dir / digest.DIGEST_CACHE_FILE).read_text())
    assert len(cached["files"]) == 4  # and the cache repaired


def test_stale_entry_with_another_stat_is_not_trusted(tmp_path: Path, cache_dir: Path) -> None:
    bundle = _bundle(tmp_path / "tiny")
    first = model_id(bundle)
    cache = cache_dir / digest.DIGEST_CACHE_FILE
    data = json.loads(cache.read_text())
    unet = os.path.realpath(bundle / "unet.safetensors")
    data["files"][unet]["sha256"] = "0" * 64  # a lying entry, but for an older version of the file
    data["files"][unet]["stat"][1] -= 1
    cache.write_text(json.dumps(data))
    assert model_id(bundle) == first


def test_unwritable_cache_never_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashed: list[str]) -> None:
    bundle = _bundle(tmp_path / "tiny")
    first = model_id(bundle)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(digest.CACHE_ENV, str(blocker / "cache"))  # its folder cannot be created
    hashed.clear()
    assert model_id(bundle) == first and len(hashed) == 4
    assert model_id(bundle) == first and len(hashed) == 8  # nothing cached: hashed each time, still works


def test_large_file_is_hashed_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    monkeypatch.setattr(digest, "_CHUNK", 1000)
    data = os.urandom(10_500)
    (tmp_path / "w.bin").write_bytes(data)
    reads: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(digest, "open", lambda p, mode: Spy(real_open(p, mode)), raising=False)
    assert digest.sha256_file(tmp_path / "w.bin") == hashlib.sha256(data).hexdigest()
    assert reads and max(reads) == 1000 and len(reads) == 12  # 11 chunks, then the empty read


def test_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightError, match="model bundle directory"):
        model_id(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightError, match="bundle config"):
        model_id(tmp_path / "empty")
