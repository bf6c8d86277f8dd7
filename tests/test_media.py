"""lsray.media: probe, streamed decode, encode + mux, atomic outputs, bad inputs."""

from __future__ import annotations

import gc
import inspect
import tracemalloc
import weakref
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from clips import (
    frame_level,
    level_frames,
    make_audio,
    make_clip,
    make_empty_wav,
    make_rotated_clip,
    make_tiny_clip,
    make_vfr_clip,
    truncate_copy,
)
from lsray.errors import LsrayError, MediaError
from lsray.media import (
    STANDARD_FRAME_RATES,
    VideoWriter,
    atomic_output,
    audio_sample_rate,
    exact_frame_rate,
    iter_frames,
    mux_audio,
    probe,
    probe_video,
    read_audio_16k,
    read_audio_native,
    write_video,
)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def clip2997(clip_dir) -> Path:
    return make_clip(clip_dir / "c2997.mp4", fps="30000/1001", duration=1.0, audio_rate=44100)


def leftovers(directory: Path) -> list[str]:
    """Temporary files an aborted write might have left behind."""
    return sorted(p.name for p in directory.iterdir() if ".partial" in p.name)


# --- probe -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", ["24", "25", "30", "30000/1001", "24000/1001"])
def test_probe_frame_rate_is_exact(clip_dir, fps):
    clip = make_clip(clip_dir / f"rate {fps.replace('/', '_')}.mp4", fps=fps, duration=1.0, audio_rate=None)
    info = probe(clip)
    assert info.fps == Fraction(fps)
    assert isinstance(info.fps, Fraction)
    assert not info.variable_frame_rate
    assert (info.width, info.height) == (64, 48)
    assert info.has_video and not info.has_audio
    assert info.n_frames == round(1.0 * Fraction(fps))


def test_printed_rates_snap_to_standard_rationals():
    assert exact_frame_rate("29.97") == Fraction(30000, 1001)
    assert exact_frame_rate("23.98") == Fraction(24000, 1001)
    assert exact_frame_rate("59.94") == Fraction(60000, 1001)
    assert exact_frame_rate("24") == 24
    assert exact_frame_rate("12.50") == Fraction(25, 2)


def test_probe_audio_fields(clip2997, clip_dir):
    info = probe(clip2997)
    assert info.has_audio and info.audio_sample_rate == 44100 and info.audio_channels == 1
    assert info.duration == pytest.approx(1.0, abs=0.05)
    audio = probe(make_audio(clip_dir / "tone.m4a", sample_rate=48000, channels=2))
    assert not info.variable_frame_rate
    assert (audio.has_video, audio.has_audio, audio.audio_sample_rate, audio.audio_channels) == (False, True, 48000, 2)


def test_variable_frame_rate_becomes_nearest_standard_rate(clip_dir):
    info = probe(make_vfr_clip(clip_dir / "vfr.mp4"))
    assert info.variable_frame_rate
    assert info.fps in STANDARD_FRAME_RATES
    frames = list(iter_frames(info.path))
    assert frames[-1].time == pytest.approx(info.duration, abs=float(3 / info.fps))


# --- decode ------------------------------------------------------------------------------------


def test_iter_frames_count_and_timestamps(clip2997):
    info = probe(clip2997)
    frames = iter_frames(clip2997)
    assert inspect.isgenerator(frames)
    frames = list(frames)
    assert len(frames) == info.n_frames == 30
    for i, frame in enumerate(frames):
        assert frame.index == i
        assert frame.time == float(Fraction(i) / Fraction(30000, 1001))
        assert frame.rgb.shape == (48, 64, 3) and frame.rgb.dtype == np.uint8
    frames[0].rgb[0, 0] = 0  # frames are the caller's, writable


def test_iter_frames_scales_down_to_a_height(clip2997):
    """``height``: frames come out that tall with the aspect kept (even width); a height at or
    above the source's is the source size."""
    from lsray.media.decode import scaled_size

    info = probe(clip2997)
    small = list(iter_frames(clip2997, height=24))
    assert len(small) == 30 and small[0].rgb.shape == (24, 32, 3) == (*scaled_size(info, 24)[::-1], 3)
    full = np.stack([f.rgb for f in iter_frames(clip2997)]).astype(np.float32)
    box = full.reshape(30, 24, 2, 32, 2, 3).mean(axis=(2, 4))  # what an area filter gives, up to rounding
    assert np.abs(np.stack([f.rgb for f in small]) - box).mean() < 8  # (the test picture is sharp-edged)
    assert scaled_size(info, 48) == scaled_size(info, 1000) == (64, 48)


def test_colour_tags_are_read_from_the_stream_summary():
    """ffmpeg prints one name when matrix, primaries and transfer agree, else all three."""
    from lsray.media import VideoColor

    parse = VideoColor.parse
    assert parse("h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1920x1080") == \
        VideoColor("tv", "bt709", "bt709", "bt709")
    hdr = parse("hevc (Main 10), yuv420p10le(tv, bt2020nc/bt2020/smpte2084, progressive), 3840x2160")
    assert hdr == VideoColor("tv", "bt2020nc", "bt2020", "smpte2084") and hdr.scale_matrix == "bt2020"
    jpeg = parse("mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 640x480")
    assert jpeg == VideoColor("pc", "bt470bg", None, None) and jpeg.frame_params() == {"range": "pc", "colorspace": "bt470bg"}
    assert parse("h264 (High), yuv420p(progressive), 320x240") == VideoColor() == parse("rawvideo, rgb24, 64x48")
    assert VideoColor().scale_matrix is None and VideoColor().frame_params() == {}


def test_iter_frames_crops_exactly_what_a_full_decode_shows(clip2997):
    """``crop``: the region is cut before the RGB conversion and equals the full frame's pixels
    there, for a segment too; odd or outside regions are refused before ffmpeg starts."""
    full = np.stack([f.rgb for f in iter_frames(clip2997)])  # (30, 48, 64, 3)
    for x, y, w, h in [(10, 6, 32, 20), (0, 0, 64, 48), (40, 30, 24, 18)]:
        part = np.stack([f.rgb for f in iter_frames(clip2997, crop=(x, y, w, h))])
        np.testing.assert_array_equal(part, full[:, y:y + h, x:x + w])
    seg = np.stack([f.rgb for f in iter_frames(clip2997, start=12, limit=5, crop=(10, 6, 32, 20))])
    np.testing.assert_array_equal(seg, full[12:17, 6:26, 10:42])
    for bad in [(1, 0, 32, 20), (0, 0, 33, 20), (40, 30, 26, 18), (-2, 0, 8, 8)]:
        with pytest.raises(ValueError, match="even region inside the 64x48 frame"):
            next(iter_frames(clip2997, crop=bad))
    with pytest.raises(ValueError, match="exclusive"):
        next(iter_frames(clip2997, crop=(0, 0, 8, 8), height=24))


def test_yuv420p_frames_go_from_decoder_to_encoder_unconverted(clip2997, tmp_path):
    """``pix_fmt="yuv420p"``: I420 planes as the stream holds them (a segment too), and a writer
    in that format encodes them as they are (lossless here: only the codec could change them)."""
    import subprocess

    from lsray.media import VideoColor, ffmpeg_exe
    from lsray.media.color import yuv_planes

    planes = np.stack([f.rgb for f in iter_frames(clip2997, pix_fmt="yuv420p")])  # (30, 72, 64)
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(clip2997), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                         stdout=subprocess.PIPE, check=True).stdout
    np.testing.assert_array_equal(planes, np.frombuffer(raw, np.uint8).reshape(30, 72, 64))
    seg = np.stack([f.rgb for f in iter_frames(clip2997, start=12, limit=5, pix_fmt="yuv420p")])
    np.testing.assert_array_equal(seg, planes[12:17])
    y, u, v = yuv_planes(planes[3])
    assert y.shape == (48, 64) and u.shape == v.shape == (24, 32) and np.shares_memory(y, planes[3])

    out = tmp_path / "same.mp4"
    bt709 = VideoColor("tv", "bt709", "bt709", "bt709")
    with VideoWriter(out, Fraction(30000, 1001), crf=0, preset="ultrafast", color=bt709, pix_fmt="yuv420p") as writer:
        for frame in planes:
            writer.write(frame)
    assert probe(out).color == bt709
    np.testing.assert_array_equal(np.stack([f.rgb for f in iter_frames(out, pix_fmt="yuv420p")]), planes)
    with VideoWriter(tmp_path / "bad.mp4", 25, pix_fmt="yuv420p") as writer:
        with pytest.raises(ValueError, match="I420"):
            writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.write(planes[0])
    with pytest.raises(ValueError, match="even size"):
        next(iter_frames(clip2997, height=21, pix_fmt="yuv420p"))


@pytest.mark.parametrize("color", [("", ""), ("tv", "bt709"), ("pc", "bt709"), ("pc", "bt470bg"), ("tv", "bt2020nc")],
                         ids=lambda c: "-".join(c) or "untagged")
def test_yuv_planes_convert_to_the_rgb_ffmpeg_decodes(color, tmp_path):
    """``VideoColor.yuv_to_rgb`` of a frame's I420 planes is the RGB ffmpeg decodes the stream to,
    with the stream's own matrix and range, up to rounding (the face tracker shows its detector
    the frames it looks at converted this way)."""
    from faces import astronaut

    from lsray.media import VideoColor

    rng, space = color
    tags = VideoColor(rng or None, space or None, None, None)
    out = tmp_path / "photo.mp4"
    with VideoWriter(out, 25, crf=12, preset="ultrafast", color=tags) as writer:
        for shift in range(3):
            writer.write(np.roll(astronaut(), 7 * shift, axis=1))
    info = probe(out)
    assert info.color.range == tags.range and info.color.scale_matrix == tags.scale_matrix
    ffmpeg_rgb = np.stack([f.rgb for f in iter_frames(out, info=info)]).astype(np.int16)
    ours = np.stack([info.color.yuv_to_rgb(f.rgb) for f in iter_frames(out, info=info, pix_fmt="yuv420p")])
    assert ours.shape == ffmpeg_rgb.shape and ours.dtype == np.uint8
    diff = np.abs(ours - ffmpeg_rgb)
    assert diff.mean() < 1.2 and diff.max() <= 3, (diff.mean(), diff.max())  # measured: 0.6-1.1, 2-3
    if tags.space == "bt709":  # the matrix matters: BT.601's is further off on this photo
        other = VideoColor(tags.range, None, None, None)
        wrong = np.abs(np.stack([other.yuv_to_rgb(f.rgb) for f in iter_frames(out, info=info, pix_fmt="yuv420p")]) - ffmpeg_rgb)
        assert wrong.mean() > diff.mean() + 0.5 and np.percentile(wrong, 99) > np.percentile(diff, 99) + 2


def test_iter_frames_segment_matches_full_decode(clip_dir):
    clip = make_clip(clip_dir / "seg.mp4", fps="30000/1001", duration=3.0, audio_rate=None)
    full = [f.rgb for f in iter_frames(clip)]
    assert len(full) == 90
    for start, limit in [(0, 5), (37, 10), (85, 10)]:
        segment = list(iter_frames(clip, start=start, limit=limit))
        assert [f.index for f in segment] == list(range(start, min(start + limit, 90)))
        for f in segment:
            np.testing.assert_array_equal(f.rgb, full[f.index])
            assert f.time == float(f.index / Fraction(30000, 1001))
    assert list(iter_frames(clip, start=200, limit=5)) == []


def test_read_audio_16k_and_native(clip2997, clip_dir):
    audio = read_audio_16k(clip2997)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) < 1600
    assert 0.05 < np.abs(audio).max() <= 1.0
    for name, rate, channels in [("d.wav", 48000, 2), ("d.mp3", 44100, 1), ("d.m4a", 22050, 1)]:
        path = make_audio(clip_dir / name, sample_rate=rate, channels=channels, duration=0.5)
        samples, sr = read_audio_native(path)
        assert sr == rate == audio_sample_rate(path)
        assert samples.shape[1] == channels and samples.dtype == np.float32
        assert abs(len(samples) - rate // 2) < rate // 10
        assert read_audio_16k(path).shape[0] == pytest.approx(8000, abs=1600)


def test_rotated_video_reports_displayed_size(clip_dir):
    clip = make_rotated_clip(clip_dir / "portrait.mp4")
    info = probe(clip)
    assert info.rotation == 90 and info.frame_size == (48, 64)
    assert next(iter_frames(clip)).rgb.shape == (64, 48, 3)


def test_closing_the_stream_early_stops_decoding(clip2997):
    frames = iter_frames(clip2997)
    first = [next(frames) for _ in range(3)]
    frames.close()  # kills ffmpeg; no error, no hang
    assert [f.index for f in first] == [0, 1, 2]


# --- encode + mux ------------------------------------------------------------------------------


def test_round_trip_encode_and_mux_keeps_rate_size_and_audio_rate(tmp_path):
    fps = Fraction(30000, 1001)
    dub = make_audio(tmp_path / "dub.wav", sample_rate=48000, channels=2, duration=2.0)  # longer: trimmed
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps, crf=10, preset="ultrafast", audio=dub) as writer:
        writer.write_all(level_frames(25))
    info = probe(out)
    assert info.fps == fps and (info.width, info.height) == (64, 48)
    assert info.duration == pytest.approx(25 / fps, abs=float(1 / fps))
    assert info.audio_codec == "aac" and info.audio_sample_rate == 48000 and info.audio_channels == 2
    frames = list(iter_frames(out))
    assert len(frames) == 25
    assert [frame_level(f.rgb) for f in frames] == list(range(25))
    samples, sr = read_audio_native(out)
    assert sr == 48000
    assert len(samples) / sr == pytest.approx(25 / fps, abs=float(1 / fps))
    assert leftovers(tmp_path) == []


def test_short_audio_is_padded_to_video_and_explicit_duration(tmp_path):
    dub = make_audio(tmp_path / "short.m4a", sample_rate=44100, channels=1, duration=0.3)
    out = write_video(tmp_path / "padded.mp4", level_frames(25), 25, preset="ultrafast", audio=dub)
    samples, sr = read_audio_native(out)
    assert sr == 44100
    assert len(samples) / sr == pytest.approx(1.0, abs=0.04)
    out2 = write_video(tmp_path / "cut.mp4", level_frames(25), 25, preset="ultrafast", audio=dub, audio_duration=0.2)
    samples2, _ = read_audio_native(out2)
    assert len(samples2) / 44100 == pytest.approx(0.2, abs=0.04)


def test_mux_audio_standalone(tmp_path):
    video = make_clip(tmp_path / "silent.mp4", fps="24", duration=1.0, audio_rate=None)
    dub = make_audio(tmp_path / "dub.mp3", sample_rate=44100, channels=2, duration=3.0)
    out = mux_audio(video, dub, tmp_path / "muxed.mp4")
    info = probe(out)
    assert info.fps == 24 and info.audio_sample_rate == 44100 and info.audio_channels == 2
    assert info.duration == pytest.approx(1.0, abs=1 / 24)


def test_odd_frame_size_is_scaled_to_even(tmp_path):
    frames = [np.full((49, 65, 3), 128, np.uint8)] * 3
    with VideoWriter(tmp_path / "odd.mp4", 25, preset="ultrafast") as writer:
        writer.write_all(frames)
    assert writer.output_size == (64, 48)
    assert probe(tmp_path / "odd.mp4").frame_size == (64, 48)


def test_paths_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "dir with space"
    clip = make_clip(folder / "vidéo ü.mp4", fps="25", duration=0.4, audio_rate=48000)
    dub = make_audio(folder / "dub ü 音.wav", sample_rate=48000, channels=1, duration=0.4)
    info = probe(clip)
    assert info.fps == 25 and info.has_audio
    frames = [f.rgb for f in iter_frames(clip)]
    assert len(frames) == 10
    assert read_audio_16k(dub).size > 0
    out = write_video(tmp_path / "sortie é" / "dubbé ü.mp4", frames, info.fps, preset="ultrafast", audio=dub)
    assert out.exists() and probe(out).audio_sample_rate == 48000
    with pytest.raises(MediaError) as excinfo:
        probe(folder / "absent ü.mp4")
    assert "absent ü.mp4" in str(excinfo.value)


# --- bad inputs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_inputs(clip_dir) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the problem must contain)."""
    text = clip_dir / "notes.txt"
    text.write_text("this is not a video\n")
    fake_mp4 = clip_dir / "fake.mp4"
    fake_mp4.write_text("plain text with a video extension\n")
    empty = clip_dir / "empty.mp4"
    empty.write_bytes(b"")
    full = make_clip(clip_dir / "whole.mp4", fps="25", duration=2.0, audio_rate=None)
    return {
        "missing": (clip_dir / "missing.mp4", "not found"),
        "text": (text, "not a"),
        "fake_mp4": (fake_mp4, "not a"),
        "empty": (empty, "empty"),
        "audio_only": (make_audio(clip_dir / "only audio.m4a"), "no video stream"),
        "truncated": (truncate_copy(full, clip_dir / "truncated.mp4"), "truncated"),
        "tiny": (make_tiny_clip(clip_dir / "tiny.mp4"), "frame too small"),
    }


@pytest.mark.parametrize("name", ["missing", "text", "fake_mp4", "empty", "audio_only", "truncated", "tiny"])
def test_bad_video_inputs_raise_media_error_naming_the_file(bad_inputs, name):
    path, words = bad_inputs[name]
    for attempt in (lambda: probe_video(path), lambda: list(iter_frames(path))):
        with pytest.raises(MediaError) as excinfo:
            attempt()
        assert isinstance(excinfo.value, LsrayError)
        assert excinfo.value.path == str(path)
        assert str(path) in str(excinfo.value)
        assert words in excinfo.value.problem


def test_faststart_mp4_cut_short_fails_while_decoding(clip_dir):
    whole = clip_dir / "faststart.mp4"
    write_video(whole, level_frames(50), 25, preset="ultrafast")  # VideoWriter writes moov first
    cut = truncate_copy(whole, clip_dir / "faststart cut.mp4")
    with pytest.raises(MediaError, match="corrupt or truncated") as excinfo:
        list(iter_frames(cut))
    assert excinfo.value.path == str(cut)


def test_zero_length_and_missing_audio(tmp_path, clip_dir):
    empty = make_empty_wav(tmp_path / "silence.wav")
    with pytest.raises(MediaError, match="zero length|empty") as excinfo:
        read_audio_16k(empty)
    assert excinfo.value.path == str(empty)
    silent = make_clip(tmp_path / "silent.mp4", audio_rate=None, duration=0.2)
    with pytest.raises(MediaError, match="no audio stream"):
        read_audio_native(silent)
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError) as excinfo:
        write_video(out, level_frames(5), 25, audio=empty)
    assert excinfo.value.path == str(empty)
    assert not out.exists() and leftovers(tmp_path) == []


# --- atomic outputs ----------------------------------------------------------------------------


def test_failing_encode_leaves_nothing_under_final_name(tmp_path):
    dub = make_audio(tmp_path / "dub.wav", duration=0.5)
    out = tmp_path / "final.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, 25, preset="ultrafast", audio=dub) as writer:
            writer.write_all(level_frames(5))
            raise RuntimeError("boom")
    assert not out.exists() and leftovers(tmp_path) == []

    with pytest.raises(ValueError):
        with VideoWriter(out, 25, preset="ultrafast") as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            writer.write(np.zeros((48, 66, 3), np.uint8))  # size changes mid-stream
    assert not out.exists() and leftovers(tmp_path) == []

    with pytest.raises(MediaError, match="no frames"):
        with VideoWriter(out, 25):
            pass
    assert not out.exists() and leftovers(tmp_path) == []

    with pytest.raises(MediaError, match="encoder failed"):
        with VideoWriter(out, 25, preset="no-such-preset") as writer:
            for frame in level_frames(200):
                writer.write(frame)
    assert not out.exists() and leftovers(tmp_path) == []

    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 25, preset="ultrafast") as writer:
            writer.write_all(level_frames(3))
            raise RuntimeError("crash")
    assert out.read_bytes() == b"previous result"


def test_atomic_output_is_general(tmp_path):
    final = tmp_path / "sub dir" / "report.json"
    with atomic_output(final) as tmp:
        assert tmp.parent == final.parent and tmp.suffix == ".json" and tmp.name.startswith(".")
        tmp.write_text("{}")
        assert not final.exists()
    assert final.read_text() == "{}"
    with pytest.raises(KeyError):
        with atomic_output(tmp_path / "other.txt") as tmp:
            tmp.write_text("half")
            raise KeyError("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub dir"]
    with pytest.raises(FileNotFoundError):
        with atomic_output(tmp_path / "never.txt"):
            pass


# --- memory ------------------------------------------------------------------------------------


def test_iterating_a_long_clip_does_not_accumulate_frames(clip_dir):
    clip = make_clip(clip_dir / "long.mp4", fps="25", duration=12.0, size=(320, 240), audio_rate=None)
    frame_bytes = 320 * 240 * 3
    alive: list[weakref.ref] = []
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        for frame in iter_frames(clip):
            alive.append(weakref.ref(frame.rgb))
            count += 1
            del frame
            assert sum(ref() is not None for ref in alive) <= 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 300
    assert peak < 8 * frame_bytes  # 300 frames would be ~69 MB; we hold about one
