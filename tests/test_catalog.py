"""Catalogs (JSONL/CSV/Parquet, local and S3) with broken rows, fingerprints, output keys, done-markers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3 import moto_s3, s3_bucket  # noqa: F401  (fixtures)

from lsray import storage
from lsray.catalog import (
    CatalogError,
    CatalogRow,
    OutputTemplateError,
    clip_fingerprint,
    done_marker_uri,
    is_done,
    mark_done,
    output_uri,
    publish_output,
    read_catalog,
)
from lsray.pipeline.options import DubOptions
from lsray.storage import ObjectNotFoundError, S3Config, UnsupportedSchemeError

JSONL_LINES = [
    {"clip_id": "a", "video": "v/a.mp4", "audio": "a/a.wav", "target_language": "es"},  # 1 ok
    {"clip_id": "b", "video": "v/b.mp4", "audio": "a/b.wav", "options": {"steps": 4, "sampler": "lcm"}},  # 2 ok
    '{"clip_id": "broken", "video": ',  # 3 malformed JSON
    "",  # 4 blank: skipped, not a row
    {"clip_id": "c", "video": "v/c.mp4"},  # 5 missing audio
    {"clip_id": "d", "video": "v/d.mp4", "audio": "a/d.wav", "options": {"steps": 0}},  # 6 bad option
    {"clip_id": "a", "video": "v/a2.mp4", "audio": "a/a2.wav"},  # 7 duplicate id
    {"clip_id": "e", "video": "v/e.mp4", "audio": "https://example.com/e.wav"},  # 8 http refused
    {"clip_id": "../evil", "video": "v/x.mp4", "audio": "a/x.wav"},  # 9 unsafe id
    {"clip_id": "f", "video": "v/f.mp4", "audio": "a/f.wav", "face_hint": "10,20@1.5", "notes": "x"},  # 10 ok
    {"clip_id": "g", "video": "v/g.mp4", "audio": "a/g.wav", "face_hint": "faces/g.json", "options": {"bogus": 1}},  # 11
]
JSONL_VALID = {"a": 1, "b": 2, "f": 10}
JSONL_INVALID = {
    3: (None, "malformed JSON"),
    5: ("c", "missing required field 'audio'"),
    6: ("d", "options.steps"),
    7: ("a", "duplicate clip_id 'a' (first at line 1)"),
    8: ("e", "http(s)"),
    9: ("../evil", "clip_id must be"),
    11: ("g", "unknown option 'options.bogus'"),
}

CSV_TEXT = (
    "clip_id,video,audio,target_language,steps,resolution,keep_silent_mouth,options\n"  # 1 header
    "a,v/a.mp4,a/a.wav,es,,,,\n"  # 2 ok
    'b,v/b.mp4,a/b.wav,,4,256,false,"{""sampler"": ""lcm""}"\n'  # 3 ok, typed from text
    "c,v/c.mp4,,,,,,\n"  # 4 missing audio
    "d,v/d.mp4,a/d.wav,,0,,,\n"  # 5 bad option
    'e,v/e.mp4,a/e.wav,de,,,,"{""seed"":\n'  # 6 ok: a quoted cell spanning two lines
    '7}"\n'  # 7 (continuation of line 6)
    "a,v/a2.mp4,a/a2.wav,,,,,\n"  # 8 duplicate
    "x,y\n"  # 9 wrong number of fields
    "h,v/h.mp4,a/h.wav,,,999,,\n"  # 10 bad resolution
    'i,v/i.mp4,a/i.wav,,,,,"{not json"\n'  # 11 malformed options JSON
)
CSV_VALID = {"a": 2, "b": 3, "e": 6}
CSV_INVALID = {
    4: ("c", "missing required field 'audio'"),
    5: ("d", "options.steps"),
    8: ("a", "duplicate clip_id 'a' (first at line 2)"),
    9: (None, "row has 2 fields, the header has 8"),
    10: ("h", "options.resolution"),
    11: ("i", "options: malformed JSON"),
}

PARQUET_ROWS = [
    {"clip_id": "a", "video": "v/a.mp4", "audio": "a/a.wav", "steps": None, "options": None},  # 1 ok
    {"clip_id": "b", "video": "v/b.mp4", "audio": None, "steps": None, "options": None},  # 2 missing audio
    {"clip_id": "c", "video": "v/c.mp4", "audio": "a/c.wav", "steps": 0, "options": None},  # 3 bad option
    {"clip_id": "a", "video": "v/a.mp4", "audio": "a/a.wav", "steps": None, "options": None},  # 4 duplicate
    {"clip_id": "d", "video": "v/d.mp4", "audio": "a/d.wav", "steps": 8, "options": '{"sampler": "lcm"}'},  # 5 ok
    {"clip_id": "e", "video": "v/e.mp4", "audio": "a/e.wav", "steps": None, "options": "{"},  # 6 bad options JSON
]
PARQUET_VALID = {"a": 1, "d": 5}
PARQUET_INVALID = {
    2: ("b", "missing required field 'audio'"),
    3: ("c", "options.steps"),
    4: ("a", "duplicate clip_id 'a' (first at line 1)"),
    6: ("e", "malformed JSON"),
}


def jsonl_bytes() -> bytes:
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in JSONL_LINES).encode() + b"\n"


def parquet_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "build.parquet"
    schema = pa.schema([("clip_id", pa.string()), ("video", pa.string()), ("audio", pa.string()), ("steps", pa.int64()), ("options", pa.string())])
    pq.write_table(pa.Table.from_pylist(PARQUET_ROWS, schema=schema), path)
    return path.read_bytes()


def check(result, valid: dict[str, int], invalid: dict[int, tuple[str | None, str]], folder: str) -> None:
    assert {r.clip_id: r.line for r in result.rows} == valid
    got = {bad.line: bad for bad in result.invalid}
    assert sorted(got) == sorted(invalid), [b.model_dump() for b in result.invalid]
    for line, (clip_id, reason) in invalid.items():
        assert got[line].clip_id == clip_id
        assert reason in got[line].reason, (line, got[line].reason)
    a = next(r for r in result.rows if r.clip_id == "a")
    assert a.video == storage.join(folder, "v/a.mp4") and a.audio == storage.join(folder, "a/a.wav")


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path: Path):
    """Write catalog bytes under a folder (local tmp or an S3 prefix); return (writer, folder URI, config)."""
    if request.param == "local":
        folder = str(tmp_path / "catalogs")
        return folder, None
    config: S3Config = request.getfixturevalue("moto_s3")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/catalogs", config


def test_jsonl_catalog_with_broken_rows(place, tmp_path: Path) -> None:
    folder, config = place
    uri = storage.join(folder, "cat.jsonl")
    storage.write_bytes(uri, jsonl_bytes(), config)
    result = read_catalog(uri, DubOptions(crf=20), config)
    check(result, JSONL_VALID, JSONL_INVALID, folder)
    rows = {r.clip_id: r for r in result.rows}
    assert rows["a"].target_language == "es" and rows["a"].options == DubOptions(crf=20)
    assert rows["b"].options.steps == 4 and rows["b"].options.sampler == "lcm" and rows["b"].options.crf == 20
    assert rows["f"].options.speaker == "10,20@1.5" and rows["f"].face_speaker == "10,20@1.5"
    assert rows["f"].face_sidecar is None
    assert result.ignored_fields == ["notes"]


def test_csv_catalog_with_broken_rows(place) -> None:
    folder, config = place
    uri = storage.join(folder, "cat.csv")
    storage.write_bytes(uri, CSV_TEXT.encode(), config)
    result = read_catalog(uri, DubOptions(), config)
    check(result, CSV_VALID, CSV_INVALID, folder)
    rows = {r.clip_id: r for r in result.rows}
    b = rows["b"].options
    assert (b.steps, b.resolution, b.keep_silent_mouth, b.sampler) == (4, 256, False, "lcm")
    assert rows["e"].options.seed == 7 and rows["e"].target_language == "de"
    assert rows["b"].target_language is None  # empty cell = not set


def test_parquet_catalog_with_broken_rows(place, tmp_path: Path) -> None:
    folder, config = place
    uri = storage.join(folder, "cat.parquet")
    storage.write_bytes(uri, parquet_bytes(tmp_path), config)
    result = read_catalog(uri, DubOptions(), config)
    check(result, PARQUET_VALID, PARQUET_INVALID, folder)
    d = next(r for r in result.rows if r.clip_id == "d")
    assert d.options.steps == 8 and d.options.sampler == "lcm"


def test_whole_catalog_errors(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="missing.jsonl"):
        read_catalog(str(tmp_path / "missing.jsonl"))
    (tmp_path / "cat.txt").write_text("x")
    with pytest.raises(CatalogError, match="unknown catalog format"):
        read_catalog(str(tmp_path / "cat.txt"))
    with pytest.raises(UnsupportedSchemeError):
        read_catalog("https://example.com/cat.jsonl")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CatalogError, match="Parquet"):
        read_catalog(str(tmp_path / "bad.parquet"))


def test_large_jsonl_is_fast(tmp_path: Path) -> None:
    n = 5000
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(n):
            opts = {"steps": 4} if i % 2 else {}
            f.write(json.dumps({"clip_id": f"clip-{i:05d}", "video": f"v/{i}.mp4", "audio": f"a/{i}.wav", "options": opts}) + "\n")
    t0 = time.perf_counter()
    result = read_catalog(str(path))
    elapsed = time.perf_counter() - t0
    assert len(result.rows) == n and not result.invalid
    assert elapsed < 5.0, elapsed


def _row(folder: Path, **kw) -> CatalogRow:
    (folder / "a.mp4").write_bytes(b"video-1") if not (folder / "a.mp4").exists() else None
    (folder / "a.wav").write_bytes(b"audio-1") if not (folder / "a.wav").exists() else None
    base = {"clip_id": "a", "video": "a.mp4", "audio": "a.wav"}
    return CatalogRow.model_validate({**base, **kw}, context={"base": str(folder)})


def test_fingerprint_tracks_inputs_options_model_and_settings(tmp_path: Path) -> None:
    row = _row(tmp_path)
    fp = clip_fingerprint(row, "lsray-v1", {"fps": 25})
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert clip_fingerprint(row, "lsray-v1", {"fps": 25}) == fp  # stable
    assert clip_fingerprint(_row(tmp_path), "lsray-v1", {"fps": 25}) == fp  # same row re-read
    assert clip_fingerprint(row, "lsray-v2", {"fps": 25}) != fp
    assert clip_fingerprint(row, "lsray-v1", {"fps": 30}) != fp
    assert clip_fingerprint(_row(tmp_path, options=DubOptions(steps=4)), "lsray-v1", {"fps": 25}) != fp

    st = (tmp_path / "a.wav").stat()
    os.utime(tmp_path / "a.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched
    touched = clip_fingerprint(row, "lsray-v1", {"fps": 25})
    assert touched != fp
    (tmp_path / "a.mp4").write_bytes(b"video-2 longer")  # content (and size) changed
    assert clip_fingerprint(row, "lsray-v1", {"fps": 25}) not in (fp, touched)

    with pytest.raises(ObjectNotFoundError):
        clip_fingerprint(_row(tmp_path, clip_id="z", video="missing.mp4"), "m", {})
    with pytest.raises(TypeError):
        clip_fingerprint(row, "m", {"obj": object()})


def test_fingerprint_s3_uses_etag(moto_s3: S3Config, s3_bucket: str) -> None:
    storage.write_bytes(f"s3://{s3_bucket}/in/a.mp4", b"v1", moto_s3)
    storage.write_bytes(f"s3://{s3_bucket}/in/a.wav", b"a1", moto_s3)
    row = CatalogRow(clip_id="a", video=f"s3://{s3_bucket}/in/a.mp4", audio=f"s3://{s3_bucket}/in/a.wav")
    fp = clip_fingerprint(row, "m", {}, moto_s3)
    assert clip_fingerprint(row, "m", {}, moto_s3) == fp
    storage.write_bytes(f"s3://{s3_bucket}/in/a.mp4", b"v2", moto_s3)  # same size, new content
    assert clip_fingerprint(row, "m", {}, moto_s3) != fp


def test_output_uri_templates(tmp_path: Path) -> None:
    row = CatalogRow(clip_id="ep1.scene-2", video="/v.mp4", audio="/a.wav", target_language="pt-BR")
    assert output_uri("s3://bkt/out", row) == "s3://bkt/out/ep1.scene-2.mp4"
    assert output_uri(str(tmp_path), row, "{target_language}/{clip_id}.mp4") == str(tmp_path / "pt-BR" / "ep1.scene-2.mp4")
    fp = "0123456789abcdef" * 4
    assert output_uri("s3://bkt/out/", row, "{clip_id}-{fingerprint8}.mp4", fp) == "s3://bkt/out/ep1.scene-2-01234567.mp4"
    no_lang = CatalogRow(clip_id="x", video="/v.mp4", audio="/a.wav")
    assert output_uri("/o", no_lang, "{target_language}/{clip_id}.mp4") == "/o/und/x.mp4"
    with pytest.raises(OutputTemplateError, match="unknown placeholders"):
        output_uri("/o", row, "{title}.mp4")
    with pytest.raises(OutputTemplateError, match="fingerprint"):
        output_uri("/o", row, "{fingerprint8}.mp4")
    with pytest.raises(OutputTemplateError, match="not inside"):
        output_uri("/o", row, "../{clip_id}.mp4")


def test_is_done_local(tmp_path: Path) -> None:
    out = str(tmp_path / "out" / "a.mp4")
    assert not is_done(out, "f1")
    rendered = tmp_path / "rendered.mp4"
    rendered.write_bytes(b"final video")
    publish_output(rendered, out, "f1", {"frames": 10})
    assert Path(out).read_bytes() == b"final video"
    marker = json.loads(Path(done_marker_uri(out)).read_text())
    assert marker["fingerprint"] == "f1" and marker["frames"] == 10
    assert is_done(out, "f1") and not is_done(out, "f2")
    Path(out).unlink()  # marker without output: not done
    assert not is_done(out, "f1")
    with pytest.raises(ObjectNotFoundError):
        mark_done(out, "f1")  # a marker never precedes its output


def test_is_done_s3(moto_s3: S3Config, s3_bucket: str, tmp_path: Path) -> None:
    out = f"s3://{s3_bucket}/out/a.mp4"
    rendered = tmp_path / "rendered.mp4"
    rendered.write_bytes(b"final video")
    assert not is_done(out, "f1", moto_s3)
    publish_output(rendered, out, "f1", config=moto_s3)
    assert storage.exists(done_marker_uri(out), moto_s3)
    assert is_done(out, "f1", moto_s3) and not is_done(out, "f2", moto_s3)
    # A worker that died between the upload and the marker: the object's metadata still proves it.
    moto_s3.client().delete_object(Bucket=s3_bucket, Key="out/a.mp4.json")
    assert is_done(out, "f1", moto_s3) and not is_done(out, "f2", moto_s3)
