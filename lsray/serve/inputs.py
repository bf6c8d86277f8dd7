"""Request inputs -> local media files the stages can read, with the service's limits.

Uploads: the body is read in chunks and refused (413) as soon as it passes the cap, then parsed
as multipart/form-data with the standard library's MIME parser (no extra dependency); fields
``video`` and ``audio`` (files) and ``options`` (JSON text, optional). URIs: checked against
the storage roots (400), sized before copying (413), copied into the request's folder.
Every file is then sniffed: magic bytes of a known container, then an ffmpeg probe (415), and
its frame size and duration checked (413).
"""

from __future__ import annotations

import email.parser
import email.policy
import os
from dataclasses import dataclass
from pathlib import Path

from lsray.errors import MediaError
from lsray.serve.security import PolicyError, check_uri
from lsray.serve.settings import Limits


class InputError(Exception):
    """A request the service refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(message)


def too_large(what: str) -> InputError:
    return InputError(413, what)


async def read_body(request, limit: int) -> bytes:
    """The request body, or 413 once it exceeds ``limit`` bytes (the rest is never buffered)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise InputError(400, "malformed multipart body")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


# Containers ffmpeg reads that clients send: magic bytes at an offset.
_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # MP4 / MOV / M4A / 3GP
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"RIFF"),  # WAV / AVI
    (0, b"OggS"),
    (0, b"fLaC"),
    (0, b"ID3"),  # MP3 with tags
    (0, b"FLV"),
    (0, b"\x00\x00\x01\xba"),  # MPEG-PS
    (0, b"\x47"),  # MPEG-TS sync byte (confirmed by the probe)
    (4, b"moov"), (4, b"mdat"), (4, b"wide"), (4, b"free"),  # QuickTime without ftyp
)


def looks_like_media(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:  # MPEG audio frame sync
        return True
    return any(head[off: off + len(magic)] == magic for off, magic in _MAGIC)


@dataclass
class MediaCheck:
    duration: float
    width: int | None = None
    height: int | None = None
    fps: float | None = None


def check_media(path: str | Path, kind: str, limits: Limits) -> MediaCheck:
    """Sniff and probe one local file (``kind``: "video" or "audio"); 415 / 413 on failure."""
    from lsray.media import probe_audio, probe_video

    with open(path, "rb") as fh:
        head = fh.read(16)
    if not looks_like_media(head):
        raise InputError(415, f"{kind}: not a media file (unrecognised content)")
    try:
        info = probe_video(path) if kind == "video" else probe_audio(path)
    except MediaError as exc:
        raise InputError(415, f"{kind}: {exc.problem}") from None
    duration = float(info.duration or 0.0)
    if duration > limits.max_duration_s:
        raise too_large(f"{kind} lasts {duration:.1f} s; the limit is {limits.max_duration_s:g} s")
    if kind == "video":
        w, h = int(info.width or 0), int(info.height or 0)
        if max(w, h) > limits.max_width or min(w, h) > limits.max_height:
            raise too_large(f"video is {w}x{h}; the limit is {limits.max_width}x{limits.max_height}")
        return MediaCheck(duration, w, h, float(info.fps) if info.fps else None)
    return MediaCheck(duration)


def fetch_uri(uri: str, roots: list[str], dest: Path, limit: int) -> Path:
    """Copy an allowed storage URI to ``dest`` (400 outside the roots, 404 missing, 413 too big)."""
    from lsray import storage

    try:
        check_uri(uri, roots)
    except PolicyError as exc:
        raise InputError(400, str(exc)) from None
    try:
        n = storage.size(uri)
    except storage.ObjectNotFoundError:
        raise InputError(404, f"{uri}: no such file or object") from None
    except storage.StorageError as exc:
        raise InputError(400, str(exc)) from None
    if n > limit:
        raise too_large(f"{uri} is {n} bytes; the limit is {limit}")
    if not storage.parse_uri(uri).is_s3:
        path = storage.parse_uri(uri).path
        if os.path.isdir(path):
            raise InputError(400, f"{uri}: is a directory")
    dest.write_bytes(storage.read_bytes(uri))
    return dest
