"""Storage: URIs, atomic local writes, S3 multipart (abort leaves nothing), local_copy, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from s3 import moto_s3, s3_bucket  # noqa: F401  (fixtures)

from lsray import storage
from lsray.errors import LsrayError
from lsray.storage import (
    MIN_PART_SIZE,
    ObjectNotFoundError,
    S3Config,
    StorageAccessError,
    UnsupportedSchemeError,
)


def test_parse_and_join() -> None:
    loc = storage.parse_uri("s3://bkt/a/b.mp4")
    assert (loc.kind, loc.bucket, loc.key) == ("s3", "bkt", "a/b.mp4")
    assert storage.parse_uri("file:///tmp/x y.mp4").path == "/tmp/x y.mp4"
    assert storage.parse_uri("rel/x.mp4").path == "rel/x.mp4"
    assert storage.join("s3://bkt", "a", "b.mp4") == "s3://bkt/a/b.mp4"
    assert storage.join("s3://bkt/out/", "/clip.mp4") == "s3://bkt/out/clip.mp4"
    assert storage.join("/data/out", "x", "y.json") == "/data/out/x/y.json"
    assert storage.join("file:///data", "x") == "file:///data/x"
    assert storage.resolve_reference("v/a.mp4", "s3://bkt/cat") == "s3://bkt/cat/v/a.mp4"
    assert storage.resolve_reference("../a.mp4", "s3://bkt/cat/sub") == "s3://bkt/cat/a.mp4"
    assert storage.resolve_reference("/abs/a.mp4", "s3://bkt/cat") == "/abs/a.mp4"
    assert storage.resolve_reference("s3://o/k", "/local") == "s3://o/k"
    assert storage.resolve_reference("a.mp4", "/data/cat") == "/data/cat/a.mp4"


@pytest.mark.parametrize("uri", ["http://example.com/a.mp4", "https://example.com/a.mp4", "gs://b/k", "ftp://h/x"])
def test_unsupported_schemes_are_refused_with_the_uri(uri: str) -> None:
    with pytest.raises(UnsupportedSchemeError) as info:
        storage.exists(uri)
    assert uri in str(info.value)
    assert isinstance(info.value, LsrayError)
    if uri.startswith("http"):
        assert "http(s)" in str(info.value)


def test_local_roundtrip_and_listing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "sub" / "a.bin"
    storage.write_bytes(str(target), b"abc")
    assert storage.exists(str(target)) and storage.size(str(target)) == 3
    assert storage.read_bytes("file://" + str(target)) == b"abc"
    storage.write_bytes(str(tmp_path / "out" / "b.bin"), b"x")
    assert storage.list_prefix(str(tmp_path / "out")) == [str(tmp_path / "out" / "b.bin"), str(target)]
    ident = storage.identity(str(target))
    assert ident["size"] == 3 and ident["mtime_ns"] > 0 and ident["path"] == str(target.resolve())
    with storage.local_copy(str(target)) as p:
        assert p == target
    with pytest.raises(ObjectNotFoundError, match="missing.bin"):
        storage.read_bytes(str(tmp_path / "missing.bin"))
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for generic handlers
        storage.size(str(tmp_path / "missing.bin"))
    results = tmp_path / "new" / "results.json"  # folders made, as write_bytes makes them
    storage.write_json(str(results), {"ms": 35.8, "steps": {"prepare": 10.7}})
    assert results.read_text() == '{\n  "ms": 35.8,\n  "steps": {\n    "prepare": 10.7\n  }\n}\n'


def test_local_atomic_writer_leaves_nothing_when_the_writer_raises(tmp_path: Path) -> None:
    final = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="encoder died"):
        with storage.atomic_writer(str(final)) as tmp:
            assert tmp.parent == final.parent and tmp.suffix == ".mp4"
            tmp.write_bytes(b"half a video")
            raise RuntimeError("encoder died")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []  # the temp file is gone too

    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with storage.atomic_writer(str(final)) as tmp:
            tmp.write_bytes(b"new but broken")
            raise RuntimeError("boom")
    assert final.read_bytes() == b"old"  # the previous version is untouched

    with storage.atomic_writer(str(final)) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_deleting_a_local_prefix_takes_what_a_killed_writer_left(tmp_path: Path) -> None:
    """A render worker killed mid-copy (its node lost) leaves a ``.partial`` file that listings
    hide; the job's sweep of its staging folder must take it too, and nothing of another job's."""
    root = tmp_path / "_lsray_staging"
    clip = root / "job-a" / "n0-0123456789ab"
    clip.mkdir(parents=True)
    (clip / "segment-00000.mp4").write_bytes(b"done")
    (clip / ".segment-00001.25198084.partial.mp4").write_bytes(b"half")
    other = root / "job-b" / "n1-0123456789ab" / "segment-00000.mp4"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"theirs")
    assert storage.list_prefix(str(root / "job-a")) == [str(clip / "segment-00000.mp4")]  # the partial is hidden

    storage.delete_prefix(str(root / "job-a"))
    storage.remove_empty_folder(str(root))
    assert not (root / "job-a").exists()
    assert other.read_bytes() == b"theirs"  # the root is shared: kept while another job uses it

    storage.delete_prefix(str(root / "job-b"))
    storage.remove_empty_folder(str(root))
    assert not root.exists()
    storage.delete_prefix(str(root / "never-made"))  # best effort: nothing there is not an error


def test_s3_multipart_roundtrip_two_parts(moto_s3: S3Config, s3_bucket: str, tmp_path: Path) -> None:
    data = os.urandom(MIN_PART_SIZE + 123_457)  # > 5 MiB: two parts with the minimum part size
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    uri = f"s3://{s3_bucket}/out/big.bin"
    storage.multipart_upload(src, uri, part_size=MIN_PART_SIZE, config=moto_s3, metadata={"lsray-fingerprint": "abc"})
    head = moto_s3.client().head_object(Bucket=s3_bucket, Key="out/big.bin")
    assert head["ETag"].strip('"').endswith("-2")  # S3 multipart ETags end with the part count
    assert head["ContentLength"] == len(data)
    assert storage.metadata(uri, moto_s3) == {"lsray-fingerprint": "abc"}
    assert storage.read_bytes(uri, moto_s3) == data
    ident = storage.identity(uri, moto_s3)
    assert ident["size"] == len(data) and ident["etag"].endswith("-2")


def test_s3_aborted_upload_leaves_no_object(moto_s3: S3Config, s3_bucket: str, tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(MIN_PART_SIZE + 10))
    client = moto_s3.client()
    real_upload_part = client.upload_part
    calls = {"n": 0}

    def failing_upload_part(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionResetError("network dropped during part 2")
        return real_upload_part(**kwargs)

    monkeypatch.setattr(client, "upload_part", failing_upload_part)
    uri = f"s3://{s3_bucket}/out/big.bin"
    with pytest.raises(ConnectionResetError):
        storage.multipart_upload(src, uri, part_size=MIN_PART_SIZE, config=moto_s3)
    monkeypatch.undo()
    assert not storage.exists(uri, moto_s3)
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []  # aborted, not dangling


def test_s3_atomic_writer_publishes_only_on_success(moto_s3: S3Config, s3_bucket: str) -> None:
    uri = f"s3://{s3_bucket}/clips/a.mp4"
    with pytest.raises(RuntimeError):
        with storage.atomic_writer(uri, moto_s3) as tmp:
            assert tmp.suffix == ".mp4"
            tmp.write_bytes(b"partial")
            raise RuntimeError("render failed")
    assert not storage.exists(uri, moto_s3)
    with storage.atomic_writer(uri, moto_s3) as tmp:
        tmp.write_bytes(b"complete")
    assert storage.read_bytes(uri, moto_s3) == b"complete"
    assert not tmp.exists()  # the local staging file is cleaned up
    storage.write_bytes(f"s3://{s3_bucket}/clips/empty.txt", b"", moto_s3)
    assert storage.size(f"s3://{s3_bucket}/clips/empty.txt", moto_s3) == 0
    assert storage.list_prefix(f"s3://{s3_bucket}/clips/", moto_s3) == [
        f"s3://{s3_bucket}/clips/a.mp4",
        f"s3://{s3_bucket}/clips/empty.txt",
    ]


def test_s3_local_copy_and_atomic_upload(moto_s3: S3Config, s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00video bytes")
    uri = f"s3://{s3_bucket}/in/clip.mp4"
    storage.atomic_upload(src, uri, moto_s3)
    with storage.local_copy(uri, moto_s3) as local:
        assert local.suffix == ".mp4" and local.read_bytes() == b"\x00video bytes"
        kept = local
    assert not kept.exists()  # temp copy removed on exit
    with pytest.raises(ObjectNotFoundError, match=f"s3://{s3_bucket}/in/missing.mp4"):
        with storage.local_copy(f"s3://{s3_bucket}/in/missing.mp4", moto_s3):
            pass


def test_s3_errors_name_the_uri(moto_s3: S3Config, s3_bucket: str) -> None:
    with pytest.raises(ObjectNotFoundError, match="no such object"):
        storage.read_bytes(f"s3://{s3_bucket}/nope", moto_s3)
    with pytest.raises(ObjectNotFoundError, match="bucket does not exist"):
        storage.read_bytes("s3://no-such-bucket-xyz/k", moto_s3)
    assert not storage.exists(f"s3://{s3_bucket}/nope", moto_s3)
    dead = S3Config(endpoint_url="http://127.0.0.1:9", access_key_id="a", secret_access_key="b", max_attempts=1, connect_timeout=1)
    with pytest.raises(StorageAccessError, match=f"s3://{s3_bucket}/x"):
        storage.read_bytes(f"s3://{s3_bucket}/x", dead)


def test_s3_config_from_env(monkeypatch) -> None:
    monkeypatch.setenv("LSRAY_S3_ENDPOINT", "http://127.0.0.1:1234")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    cfg = S3Config.from_env()
    assert cfg.endpoint_url == "http://127.0.0.1:1234" and cfg.region == "eu-west-1"
    monkeypatch.delenv("LSRAY_S3_ENDPOINT")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5678")
    assert S3Config.from_env().endpoint_url == "http://127.0.0.1:5678"
