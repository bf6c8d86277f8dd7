"""``lsray fetch-bundle`` and the ``s3://`` bundle resolver against a loopback moto S3."""

from __future__ import annotations

from pathlib import Path

import pytest
from s3 import moto_s3, s3_bucket  # noqa: F401  (fixtures)

from lsray.cli import main
from lsray.bundle.load import resolve_bundle
from lsray.storage import set_default_s3_config
from lsray.storage.bundle_cache import MANIFEST, sync_bundle
from lsray.storage.errors import ObjectNotFoundError

FILES = {"config.json": b"{}", "unet.safetensors": b"x" * 1000, "whisper/config.json": b"{}", "mask.png": b"png"}


@pytest.fixture()
def remote_bundle(moto_s3, s3_bucket):  # noqa: F811
    client = moto_s3.client()
    for rel, data in FILES.items():
        client.put_object(Bucket=s3_bucket, Key=f"bundles/tiny/{rel}", Body=data)
    set_default_s3_config(moto_s3)
    yield f"s3://{s3_bucket}/bundles/tiny"
    set_default_s3_config(None)


def test_fetch_bundle_command_syncs_and_skips_when_current(tmp_path, remote_bundle, capsys):
    dest = tmp_path / "models" / "bundle"
    assert main(["fetch-bundle", remote_bundle, str(dest)]) == 0
    assert {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()} == {*FILES, MANIFEST}
    assert (dest / "unet.safetensors").read_bytes() == FILES["unet.safetensors"]
    before = (dest / "unet.safetensors").stat().st_mtime_ns
    assert main(["fetch-bundle", remote_bundle, str(dest)]) == 0  # unchanged: nothing downloaded
    assert (dest / "unet.safetensors").stat().st_mtime_ns == before
    assert not list(dest.parent.glob("*.partial-*"))


def test_changed_object_is_fetched_again(tmp_path, remote_bundle, moto_s3):  # noqa: F811
    dest = sync_bundle(remote_bundle, tmp_path / "b")
    bucket, key = remote_bundle[5:].split("/", 1)
    moto_s3.client().put_object(Bucket=bucket, Key=f"{key}/mask.png", Body=b"new")
    sync_bundle(remote_bundle, dest)
    assert (dest / "mask.png").read_bytes() == b"new"


def test_s3_resolver_uses_the_cache(tmp_path, remote_bundle, monkeypatch):
    monkeypatch.setenv("LSRAY_BUNDLE_CACHE", str(tmp_path / "cache"))
    path = resolve_bundle(remote_bundle)
    assert path.is_relative_to(tmp_path / "cache") and (path / "config.json").is_file()


def test_empty_prefix_is_an_error(tmp_path, remote_bundle, capsys):
    assert main(["fetch-bundle", remote_bundle + "-missing", str(tmp_path / "x")]) == 2
    assert "no objects" in capsys.readouterr().err
    with pytest.raises(ObjectNotFoundError):
        sync_bundle(str(tmp_path), tmp_path / "y")
