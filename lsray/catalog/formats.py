"""Raw record readers for JSONL, CSV and Parquet catalogs: ``(line, dict | problem string)``.

They stream (one line or one Parquet batch at a time) so a catalog of many thousands of rows
never sits in memory twice. A record a reader cannot even parse (malformed JSON, a CSV row with
the wrong number of fields) comes out as a string describing the problem, so the caller reports
it with its line number and carries on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Literal

from lsray.storage.arrow import open_input_file, open_input_stream
from lsray.storage.s3_config import S3Config
from lsray.storage.s3_errors import arrow_errors

from .row import CatalogError

CatalogFormat = Literal["jsonl", "csv", "parquet"]
RawRecord = tuple[int, dict[str, Any] | str]

_EXTENSIONS: dict[str, CatalogFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")  # pyarrow input streams decompress these on the fly


def catalog_format(uri: str) -> CatalogFormat:
    """The format named by the extension (``.jsonl``/``.ndjson``, ``.csv``, ``.parquet``/``.pq``; +``.gz`` etc. for text)."""
    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    for comp in _COMPRESSED:
        if name.endswith(comp):
            name = name[: -len(comp)]
            fmt = _EXTENSIONS.get("." + name.rsplit(".", 1)[-1]) if "." in name else None
            if fmt in ("jsonl", "csv"):
                return fmt
            raise CatalogError(f"{uri}: compressed catalogs must be .jsonl or .csv (got {name!r})")
    ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if ext not in _EXTENSIONS:
        raise CatalogError(f"{uri}: unknown catalog format {ext or '(no extension)'!r}; use .jsonl, .csv or .parquet")
    return _EXTENSIONS[ext]


def iter_jsonl(uri: str, config: S3Config | None = None) -> Iterator[RawRecord]:
    """One JSON object per line; blank lines are skipped (they are not rows)."""
    with open_input_stream(uri, config) as stream, arrow_errors(uri):
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace")
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                yield number, f"malformed JSON: {e.msg} (column {e.colno})"
                continue
            if not isinstance(value, dict):
                yield number, f"expected a JSON object, got {type(value).__name__}"
                continue
            yield number, value


def iter_csv(uri: str, config: S3Config | None = None) -> Iterator[RawRecord]:
    """A header row, then one record per row; empty cells mean "not set".

    Line numbers are the file line where the record starts (quoted cells may span lines), so
    the first record after the header is line 2.
    """
    with open_input_stream(uri, config) as stream, arrow_errors(uri):
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield start, f"unreadable CSV row: {e}"
                continue
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            if len(cells) != len(header):
                yield start, f"row has {len(cells)} fields, the header has {len(header)}"
                continue
            yield start, {k: (v if v.strip() else None) for k, v in zip(header, cells) if k}


def iter_parquet(uri: str, config: S3Config | None = None, batch_size: int = 4096) -> Iterator[RawRecord]:
    """Rows of a Parquet file in batches; the "line" is the row index + 1."""
    import pyarrow.parquet as pq

    with open_input_file(uri, config) as f, arrow_errors(uri):
        try:
            parquet = pq.ParquetFile(f)
        except Exception as e:  # pyarrow raises ArrowInvalid for a non-Parquet file
            raise CatalogError(f"{uri}: not a readable Parquet file ({e})") from e
        index = 0
        for batch in parquet.iter_batches(batch_size=batch_size):
            for record in batch.to_pylist():
                index += 1
                yield index, record


def iter_raw_records(uri: str, config: S3Config | None = None) -> Iterator[RawRecord]:
    """Dispatch on the catalog's extension."""
    fmt = catalog_format(uri)
    if fmt == "jsonl":
        return iter_jsonl(uri, config)
    if fmt == "csv":
        return iter_csv(uri, config)
    return iter_parquet(uri, config)
