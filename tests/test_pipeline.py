"""The clip pipeline end to end on a real face (the astronaut, found by mediapipe) with the tiny
random bundle: timing and format of the outputs, what may and may not change, bad input."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from clips import make_clip, truncate_copy
from talking import face_frame, write_blank_clip, write_dub, write_face_clip
from lsray.media import count_frames, iter_frames, probe
from lsray.pipeline.local import run_clip
from lsray.pipeline.options import DubOptions
from lsray.pipeline.records import ClipSpec
from lsray.pipeline.timeline import make_timeline

REPO = Path(__file__).resolve().parents[1]
FAST = dict(steps=1, guidance=1.0)  # one UNet pass per window keeps the suite quick


@pytest.fixture(scope="module")
def flow(tiny_bundle):
    from lsray.bundle import load_bundle
    from lsray.pipeline.flow import ClipFlow

    return ClipFlow(load_bundle(tiny_bundle, device="cpu"), encode_preset="ultrafast")


def frames_of(path: Path) -> np.ndarray:
    return np.stack([f.rgb for f in iter_frames(path)]).astype(np.float32)


def reencoded(frames: np.ndarray, path: Path) -> np.ndarray:
    """The frames after one more H.264 generation with the pipeline's settings: codec error alone."""
    from lsray.media import write_video

    return frames_of(write_video(path, (f.astype(np.uint8) for f in frames), 25, crf=18, preset="ultrafast"))


def dub(flow, tmp_path: Path, video: Path, audio: Path, name: str = "out.mp4", **opts):
    out = tmp_path / name
    result = run_clip(flow, ClipSpec(name, str(video), str(audio), str(out), DubOptions(**{**FAST, **opts})))
    return result, out


def test_end_to_end_on_a_real_face(flow, tmp_path):
    video = write_face_clip(tmp_path / "src.mp4", frames=32)
    audio = write_dub(tmp_path / "dub.wav", 32 / 25, sample_rate=44100)
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "done", result.error
    assert result.no_face_frames == 0 and result.frames == 32
    info = probe(out)
    assert info.fps == 25 and (info.width, info.height) == (320, 240)
    assert info.video_codec == "h264" and info.has_audio and info.audio_sample_rate == 44100
    assert abs(info.duration - 32 / 25) <= 1 / 25 and count_frames(out) == 32
    assert set(result.timings) >= {"face", "audio", "unet", "vae", "encode"}
    # The mouth region really changed (random weights: anything but the source).
    assert np.abs(frames_of(out) - frames_of(video)).max() > 40


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30), Fraction(30000, 1001)])
def test_source_frame_rate_is_kept(flow, tmp_path, fps):
    video = write_face_clip(tmp_path / "src.mp4", fps=fps, frames=16)
    audio = write_dub(tmp_path / "dub.wav", float(16 / fps), sample_rate=48000)
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "done", result.error
    info = probe(out)
    assert info.fps == fps and count_frames(out) == 16
    assert info.audio_sample_rate == 48000


# (mode, dub seconds, expected output frames) for a 24-frame 25 fps video (0.96 s).
SYNC_CASES = [
    ("video", 1.5, 24), ("video", 0.6, 24),
    ("cut_off", 1.5, 24), ("cut_off", 0.6, 15),
    ("bounce", 1.5, 37), ("bounce", 0.6, 15),
    ("loop", 1.5, 37), ("loop", 0.6, 15),
    ("silence", 1.5, 38), ("silence", 0.6, 24),
    ("remap", 1.5, 37), ("remap", 0.6, 15),
]


@pytest.mark.parametrize("mode, seconds, frames", SYNC_CASES)
def test_sync_modes_set_the_output_length(flow, tmp_path, mode, seconds, frames):
    video = write_blank_clip(tmp_path / "src.mp4", frames=24)  # no face: no UNet, timing only
    audio = write_dub(tmp_path / "dub.wav", seconds)
    result, out = dub(flow, tmp_path, video, audio, sync_mode=mode)
    assert result.status == "no_face", result.error
    assert result.frames == frames
    assert abs(count_frames(out) - frames) <= 1
    info = probe(out)
    assert abs(info.duration - frames / 25) <= 1 / 25 + 0.03  # AAC frames round the container duration
    if mode == "video" and seconds > 0.96:
        assert any("longer than the video" in w for w in result.warnings)


def test_faces_tracked_on_downscaled_frames_land_on_source_pixels(tmp_path):
    """Tracking runs on frames at most ``track_height`` tall (cheap on 1080p); the plan's points
    are in source pixels, within a pixel or two of tracking at full size, and a speaker named by
    a source pixel is still found."""
    from lsray.pipeline.options import ClipSettings
    from lsray.pipeline.prepare import PrepareStage

    video = write_face_clip(tmp_path / "face.mp4", frames=12, size=(320, 240))
    audio = write_dub(tmp_path / "dub.wav", 12 / 25)
    settings = ClipSettings.tracking_only(256)

    def points(stage, **opts):
        spec = ClipSpec("c", str(video), str(audio), str(tmp_path / "o.mp4"), DubOptions(**opts))
        return stage(spec, settings, str(tmp_path / "staging")).points

    full, half = points(PrepareStage()), points(PrepareStage(track_height=120))
    assert np.isfinite(full).all() and np.isfinite(half).all()
    err = np.abs(half - full).max()
    print(f"points tracked at 120 px vs 240 px: max {err:.2f} source px")
    assert err < 3.0
    centre = full[6].mean(axis=0)  # a source pixel on the face at frame 6
    picked = points(PrepareStage(track_height=120), speaker=f"{centre[0]:.0f},{centre[1]:.0f}@0.24")
    np.testing.assert_array_equal(picked, half)


def test_a_face_sidecar_gives_prepare_its_points_in_source_pixels(tmp_path, monkeypatch):
    """With a face-track sidecar, prepare decodes full-size RGB frames (the sidecar's points are
    source pixels, whatever the tracking height) and never runs the detector: the plan's points
    are the sidecar's, and frames it leaves out have no face."""
    import json

    from lsray.face import FaceDetector
    from lsray.pipeline.options import ClipSettings
    from lsray.pipeline.prepare import PrepareStage

    video = write_face_clip(tmp_path / "face.mp4", frames=8, size=(320, 240))
    audio = write_dub(tmp_path / "dub.wav", 8 / 25)
    given = {i: [[120.0 + i, 100.0], [180.0 + i, 101.0], [150.0 + i, 140.5]] for i in range(6)}  # eyes, mouth
    sidecar = tmp_path / "faces.json"
    sidecar.write_text(json.dumps({"frames": [{"index": i, "landmarks": p} for i, p in given.items()]}))

    def no_detection(*a, **k):
        raise AssertionError("the detector must not run when a sidecar is given")

    monkeypatch.setattr(FaceDetector, "detect", no_detection)
    spec = ClipSpec("c", str(video), str(audio), str(tmp_path / "o.mp4"), DubOptions(), face_sidecar=str(sidecar))
    plan = PrepareStage(track_height=120, smoothing_radius=0)(spec, ClipSettings.tracking_only(256),
                                                              str(tmp_path / "staging"))
    np.testing.assert_allclose(plan.points[:6], np.array([given[i] for i in range(6)]), atol=1e-4)
    assert np.isnan(plan.points[6:]).all() and plan.faces_found == 6


@pytest.mark.parametrize("mode", ["video", "loop"])
def test_shards_decode_only_the_face_box_yet_align_as_a_full_decode(flow, tmp_path, mode):
    """The shard step cuts, before the RGB conversion, just the box its alignment reads: the
    crops and affines equal aligning full decoded frames, bit for bit, with frames without a face
    and a source map that repeats frames (loop); a shard without a face decodes nothing."""
    from lsray.face import FaceAligner, read_box
    from lsray.pipeline.frames import face_frames, source_frames

    video = write_face_clip(tmp_path / "src.mp4", frames=40, size=(640, 480), blank_frames={3, 4, 30})
    audio = write_dub(tmp_path / "dub.wav", 2.4)
    spec = ClipSpec("box", str(video), str(audio), str(tmp_path / "o.mp4"),
                    DubOptions(**FAST, sync_mode=mode, segment_seconds=0.64))
    plan = flow.prepare(spec)
    shards = list(flow.shard(plan))
    aligner = FaceAligner(plan.resolution, smoothing_radius=0)
    for shard in shards:
        assert shard.has_face.sum() > 0
        src = plan.timeline.source_index(np.arange(shard.start, shard.stop))
        x, y, w, h = read_box(plan.points[src[shard.has_face]], plan.resolution, (640, 480))
        assert w * h < 0.6 * 640 * 480  # the face's box, not the frame
        crops = np.zeros_like(shard.crops)
        affines = np.zeros_like(shard.affines)
        for i, j, rgb in source_frames(plan, shard.start, shard.stop):  # whole frames
            if shard.has_face[i - shard.start]:
                a = aligner.align_frame(rgb, plan.points[j].astype(np.float64), j)
                crops[i - shard.start], affines[i - shard.start] = a.crop, a.affine
        np.testing.assert_array_equal(shard.crops, crops)
        np.testing.assert_array_equal(shard.affines, affines)
    nothing = np.zeros(16, bool)
    assert list(face_frames(plan, 0, 16, nothing)) == []


@pytest.mark.parametrize("rng", ["tv", "pc"])
def test_a_bt709_source_keeps_its_colours_and_tags(flow, tmp_path, rng):
    """HD sources are tagged BT.709 and ffmpeg decodes them to RGB with that matrix; the dub is
    encoded back with the same matrix and range and carries the source's tags, so the YUV samples
    of every untouched pixel stay the source's (the untagged BT.601 encode used before moved this
    saturated band's luma samples by 9 levels: a colour shift in any player that reads HD as BT.709)."""
    import subprocess

    from lsray.media import VideoColor, VideoWriter, ffmpeg_exe, probe

    bt709 = VideoColor(rng, "bt709", "bt709", "bt709")
    yy, xx = np.mgrid[0:60, 0:320]
    band = np.stack([xx * 255 // 319, 255 - yy * 4, (xx + 3 * yy) * 255 // 496], -1).astype(np.uint8)
    video = tmp_path / "hd.mp4"
    with VideoWriter(video, 25, crf=12, preset="ultrafast", color=bt709) as writer:
        for i in range(32):
            frame = face_frame(i)
            frame[:60] = band  # saturated colours well away from the face
            writer.write(frame)
    assert probe(video).color == bt709
    audio = write_dub(tmp_path / "dub.wav", 32 / 25)
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "done"
    assert probe(out).color == bt709  # through render, the segments' join and the mux

    def yuv(path: Path) -> np.ndarray:
        raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                             stdout=subprocess.PIPE, check=True).stdout
        return np.frombuffer(raw, np.uint8).reshape(-1, 360, 320).astype(np.float32)

    src, dubbed = yuv(video), yuv(out)
    luma, chroma = np.abs(src[:, 2:58] - dubbed[:, 2:58]), np.abs(src[:, 241:254] - dubbed[:, 241:254])  # the band's rows
    print(f"band: luma {luma.mean():.2f}, chroma {chroma.mean():.2f} levels from the source")
    assert luma.mean() < 1.5 and chroma.mean() < 1.5


def test_an_odd_sized_source_is_dubbed_through_rgb(flow, tmp_path):
    """4:2:0 needs even sizes, so a 321 x 241 source (4:4:4 here) is pasted in RGB and encoded at
    an even size; its mouth changes and the rest of the frame is the source scaled alike."""
    import subprocess

    from lsray.media import ffmpeg_exe

    frames = np.stack([face_frame(i, (321, 241)) for i in range(24)])
    video = tmp_path / "odd.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "321x241", "-r", "25",
                    "-i", "pipe:", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(video)],
                   input=frames.tobytes(), check=True)
    result, out = dub(flow, tmp_path, video, write_dub(tmp_path / "dub.wav", 24 / 25))
    assert result.status == "done" and result.no_face_frames == 0
    assert probe(out).frame_size in ((320, 240), (322, 242))
    dubbed, source = frames_of(out), reencoded(frames_of(video), tmp_path / "same.mp4")  # scaled alike
    diff = np.abs(dubbed - source).max(axis=-1)  # (frames, h, w)
    print(f"top rows {diff[:, :60].mean():.2f}, changed pixels per frame {(diff > 30).sum() / len(diff):.0f}")
    assert diff[:, :60].mean() < 3  # the forehead and background stay
    assert (diff > 30).sum() / len(diff) > 200  # the mouth changed


def test_timeline_maps_output_to_source_frames():
    bounce = make_timeline("bounce", Fraction(25), 4, 10 / 25)
    assert bounce.source_index(np.arange(10)).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    loop = make_timeline("loop", Fraction(25), 4, 10 / 25)
    assert loop.source_index(np.arange(10)).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    remap = make_timeline("remap", Fraction(25), 4, 8 / 25)
    assert remap.source_index(np.arange(8)).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    silence = make_timeline("silence", Fraction(25), 4, 6 / 25)
    assert silence.output_frames == 6 and silence.source_index(np.arange(6)).tolist() == [0, 1, 2, 3, 3, 3]


def test_frames_without_a_face_pass_through(flow, tmp_path):
    blank = set(range(8, 16))
    video = write_face_clip(tmp_path / "src.mp4", frames=32, blank_frames=blank)
    audio = write_dub(tmp_path / "dub.wav", 32 / 25)
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "done" and result.no_face_frames == len(blank)
    src, dst = frames_of(video), frames_of(out)
    for i in sorted(blank):
        mse = np.mean((src[i] - dst[i]) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 40, i  # equal up to codec error


def test_pixels_outside_the_feathered_mask_are_unchanged(flow, tmp_path):
    import cv2

    video = write_face_clip(tmp_path / "src.mp4", frames=16)
    audio = write_dub(tmp_path / "dub.wav", 16 / 25)
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "done"
    spec = ClipSpec("probe", str(video), str(audio), str(tmp_path / "unused.mp4"), DubOptions(**FAST))
    shard = next(flow.shard(flow.prepare(spec)))
    src, dst = frames_of(video), frames_of(out)
    # Codec error alone: the source re-encoded with the same settings and nothing changed.
    again = reencoded(src, tmp_path / "again.mp4")
    blender = flow.render_stage._blender(shard.crops.shape[1])
    for k in (0, 7, 15):
        inside = blender.frame_alpha(shard.affines[k].astype(np.float64), src[k].shape) > 0
        # H.264 codes 16x16 macroblocks: a change spills into the blocks it touches, no further.
        near = cv2.dilate(inside.astype(np.uint8), np.ones((33, 33), np.uint8)) > 0
        diff = np.abs(src[k] - dst[k]).max(axis=-1)
        codec = np.abs(src[k] - again[k]).max(axis=-1)
        assert inside.any() and (~near).any()
        assert diff[~near].mean() <= 1.5 * codec[~near].mean() + 0.2, (k, diff[~near].mean(), codec[~near].mean())
        assert diff[inside].mean() > 5 * codec[inside].mean() + 2  # the mouth did change


def test_silence_in_the_dub_keeps_the_original_mouth(flow, tmp_path):
    video = write_face_clip(tmp_path / "src.mp4", frames=48)
    audio = write_dub(tmp_path / "dub.wav", 48 / 25, pause=(0.64, 1.92))  # frames 16..47 silent
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "done"
    src = frames_of(video)
    change = np.abs(frames_of(out) - src).mean(axis=(1, 2, 3))
    codec = np.abs(reencoded(src, tmp_path / "again.mp4") - src).mean(axis=(1, 2, 3))
    assert np.all(change[24:] <= 1.3 * codec[24:] + 0.2)  # silent frames: the source mouth
    assert change[:12].min() > 2 * change[24:].max()  # speaking frames: the dubbed mouth


def test_a_shard_with_nothing_to_dub_skips_the_audio_encoder(flow, tmp_path, monkeypatch):
    """A shard whose dub is silent throughout keeps its source mouth in every window, so no
    window is sampled and its audio tokens would never be read: Whisper does not run for it."""
    from lsray.pipeline.audio import AudioStage

    video = write_face_clip(tmp_path / "src.mp4", frames=16)
    calls = []
    encode = AudioStage.__call__
    monkeypatch.setattr(AudioStage, "__call__", lambda self, shard: calls.append(shard.index) or encode(self, shard))
    for name, pause in (("silent", (0.0, 16 / 25)), ("speech", None)):
        audio = write_dub(tmp_path / f"{name}.wav", 16 / 25, pause=pause)
        spec = ClipSpec(name, str(video), str(audio), str(tmp_path / "unused.mp4"), DubOptions(**FAST))
        (shard,) = flow.shard(flow.prepare(spec))
        shard = flow.audio(shard)
        assert shard.changes() == (name == "speech") and (shard.tokens is None) == (name == "silent")
        (shard,) = flow.sample([shard])
        assert (shard.sampling is None) == (name == "silent")  # silent: no window went through the UNet
        if name == "silent":
            np.testing.assert_array_equal(shard.generated, shard.crops)
    assert len(calls) == 1  # the speaking shard's tokens only


def test_a_shard_with_nothing_to_dub_is_neither_decoded_nor_aligned_for_dubbing(flow, tmp_path, monkeypatch):
    """Render pastes nothing into a shard with no frame to dub, so the dubbing path neither
    decodes nor aligns its faces (its crops stay black); the clip still comes out as its source
    there and dubbed where it speaks. Training shards (``ShardStage``'s default) get every face."""
    import lsray.pipeline.prepare as prepare

    video = write_face_clip(tmp_path / "src.mp4", frames=48)
    audio = write_dub(tmp_path / "dub.wav", 48 / 25, pause=(0.0, 24 / 25))  # the first shard is silent
    spec = ClipSpec("half", str(video), str(audio), str(tmp_path / "out.mp4"), DubOptions(**FAST, segment_seconds=0.64))
    decoded = []
    face_frames = prepare.face_frames
    monkeypatch.setattr(prepare, "face_frames", lambda plan, start, stop, wanted: decoded.append(start) or
                        face_frames(plan, start, stop, wanted))
    plan = flow.prepare(spec)
    shards = list(flow.shard(plan))
    assert [s.changes() for s in shards] == [False, True, True]
    assert decoded == [16, 32] and not shards[0].crops.any() and not shards[0].affines.any()
    assert all(s.crops[s.has_face].reshape(-1).std() > 10 for s in shards[1:])
    decoded.clear()
    training = list(prepare.ShardStage()(plan))
    assert decoded == [0, 16, 32] and all(s.crops[s.has_face].reshape(-1).std() > 10 for s in training)
    np.testing.assert_array_equal(training[1].crops, shards[1].crops)

    result = run_clip(flow, spec)
    assert result.status == "done"
    src, out = frames_of(video), frames_of(tmp_path / "out.mp4")
    codec = np.abs(reencoded(src, tmp_path / "again.mp4") - src)
    assert np.abs(out[:16] - src[:16]).mean() <= 1.3 * codec[:16].mean() + 0.2  # the silent shard: its source
    assert np.abs(out[16:] - src[16:]).mean() > 2 * codec[16:].mean() + 0.5  # the rest: dubbed mouths


#: One clip step or two in a fresh interpreter, as a stage worker runs them: "cut" prepares and shards
#: the pickled ClipSpec, "finish" renders and assembles the pickled (plan, sampled shards). Prints
#: which model libraries the process imported.
_WORKER = """
import json, pickle, sys
from lsray.pipeline.flow import ClipFlow

step, bundle, staging, state = sys.argv[1:5]
flow = ClipFlow(bundle, staging_root=staging, encode_preset="ultrafast")
with open(state, "rb") as f:
    saved = pickle.load(f)
if step == "cut":
    plan = flow.prepare(saved)
    out = (plan, list(flow.shard(plan)))
else:
    flow.build(*ClipFlow.TORCH_FREE)  # what Serve's render replicas build (no torch threads set)
    plan, shards = saved
    out = flow.assemble(plan, [flow.render(shard) for shard in shards])
with open(state, "wb") as f:
    pickle.dump(out, f)
print(json.dumps(sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)))
"""


def test_cpu_workers_never_import_the_libraries_they_do_not_run(tiny_bundle, tmp_path):
    """A worker that prepares and cuts clips imports neither transformers nor diffusers, and one
    that renders and assembles does not import torch at all: each stage's modules load where the
    stage is built. A render worker then starts in ~0.3 s with ~95 MB, not ~4 s with ~470 MB."""
    import json
    import pickle

    from lsray.pipeline.flow import ClipFlow

    video = write_face_clip(tmp_path / "src.mp4", frames=16)
    audio = write_dub(tmp_path / "dub.wav", 16 / 25)
    out = tmp_path / "out.mp4"
    state, staging = tmp_path / "state.pkl", str(tmp_path / "staging")
    state.write_bytes(pickle.dumps(ClipSpec("w", str(video), str(audio), str(out), DubOptions(**FAST))))

    def worker(step: str) -> list[str]:
        run = subprocess.run([sys.executable, "-c", _WORKER, step, str(tiny_bundle), staging, str(state)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout.strip().splitlines()[-1])

    assert worker("cut") == ["torch"]  # prepare's log-mel max is torch's STFT (LatentSync-exact)
    plan, shards = pickle.loads(state.read_bytes())
    model_steps = ClipFlow(tiny_bundle, staging_root=staging)  # the audio and sample workers
    shards = model_steps.sample([model_steps.audio(shard) for shard in shards])
    assert shards[0].sampling is not None  # the UNet made these mouths: render pastes them
    state.write_bytes(pickle.dumps((plan, shards)))
    assert worker("finish") == []
    result = pickle.loads(state.read_bytes())
    assert result.output == str(out) and count_frames(out) == 16 and probe(out).has_audio


def test_job_managers_and_record_movers_import_no_image_or_model_library():
    """The Serve app (Ingress, JobManager), the batch job's driver and its actors' module only
    probe media and move records: importing them loads none of OpenCV (~50 MB a process),
    torch, diffusers or transformers. The stages import those where they are built."""
    import json

    heavy = ("cv2", "torch", "diffusers", "transformers", "mediapipe")
    code = ("import json, sys\n"
            "import lsray.serve.app, lsray.serve.jobs, lsray.batch.job, lsray.batch.actors, lsray.media\n"
            f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_a_stage_that_cannot_be_built_at_start_fails_the_clips_that_need_it(tiny_bundle, tmp_path):
    """Workers build their stage when they start (ClipFlow.build); one that cannot be built (a
    bundle gone missing) leaves the worker up, and each clip that needs it gets the error."""
    from lsray.errors import MissingWeightError
    from lsray.pipeline.flow import ClipFlow

    gone = ClipFlow(tmp_path / "no-bundle")
    gone.build("render", "sample")  # no raise: the worker starts
    with pytest.raises(MissingWeightError, match="no-bundle"):
        gone.render_stage
    ready = ClipFlow(tiny_bundle)
    ready.build("render")
    assert "render_stage" in vars(ready) and "sample_stage" not in vars(ready)  # its own stage only
    with pytest.raises(ValueError, match="no stage 'anchors'"):  # a misnamed stage is not silently skipped
        ready.build("anchors")


def test_shards_reassemble_without_a_seam(flow, tmp_path):
    """However a clip is cut into shards, every window sees the same inputs and noise, so the
    generated faces are identical: no seam can appear at a shard boundary."""
    video = write_face_clip(tmp_path / "src.mp4", frames=48)
    audio = write_dub(tmp_path / "dub.wav", 48 / 25)
    generated = {}
    for seconds in (10.0, 0.64):  # one shard, or three shards of one 16-frame window each
        spec = ClipSpec("seam", str(video), str(audio), str(tmp_path / "o.mp4"), DubOptions(**FAST, segment_seconds=seconds))
        shards = [flow.sample([flow.audio(s)])[0] for s in flow.shard(flow.prepare(spec))]
        assert len(shards) == (1 if seconds > 1 else 3)
        generated[seconds] = np.concatenate([s.generated for s in shards])
    assert np.array_equal(generated[10.0], generated[0.64])
    assert generated[10.0].shape[0] == 48


def test_no_face_anywhere_returns_the_original_with_the_dub(flow, tmp_path):
    video = write_blank_clip(tmp_path / "src.mp4", frames=20)
    audio = write_dub(tmp_path / "dub.wav", 20 / 25, sample_rate=22050)
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "no_face" and result.no_face_frames == 20
    src = frames_of(video)
    assert np.abs(frames_of(out) - src).mean() <= 1.3 * np.abs(reencoded(src, tmp_path / "again.mp4") - src).mean() + 0.2
    assert probe(out).audio_sample_rate == 22050


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, Path, str]]:
    good_video = write_face_clip(tmp_path / "good.mp4", frames=16)
    good_audio = write_dub(tmp_path / "good.wav", 0.64)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    audio_only = write_dub(tmp_path / "voice.wav", 0.5)
    silent = tmp_path / "empty.wav"
    import soundfile as sf

    sf.write(str(silent), np.zeros(0, np.float32), 16000)
    truncated = truncate_copy(good_video, tmp_path / "truncated.mp4", 0.4)
    tiny = make_clip(tmp_path / "tiny.mp4", size=(1, 1), pix_fmt="yuv444p")  # 4:2:0 cannot hold 1x1
    return {
        "missing file": (tmp_path / "nope.mp4", good_audio, "nope.mp4"),
        "not a video": (text, good_audio, "notes.mp4"),
        "no video stream": (audio_only, good_audio, "voice.wav"),
        "zero-length audio": (good_video, silent, "empty.wav"),
        "truncated mp4": (truncated, good_audio, "truncated.mp4"),
        "1x1 frames": (tiny, good_audio, "tiny.mp4"),
    }


def test_bad_inputs_give_clear_errors_and_no_output(flow, tmp_path):
    for case, (video, audio, named) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"{case.replace(' ', '_')}.mp4"
        result = run_clip(flow, ClipSpec(case, str(video), str(audio), str(out), DubOptions(**FAST)))
        assert result.status == "error", case
        assert named in result.error, (case, result.error)
        assert not out.exists(), case
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def _lsray(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lsray", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.slow
def test_dub_one_cli_reports_and_exits(tiny_bundle, tmp_path):
    video = write_face_clip(tmp_path / "src clip é.mp4", frames=16)  # spaces and non-ASCII
    audio = write_dub(tmp_path / "dub ü.wav", 0.64)
    out = tmp_path / "out put.mp4"
    ok = _lsray("dub-one", str(video), str(audio), "-o", str(out), "--model", str(tiny_bundle), "--steps", "1", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert "done:" in ok.stdout and "unet" in ok.stdout and out.is_file()
    missing = _lsray("dub-one", str(tmp_path / "gone.mp4"), str(audio), "-o", str(tmp_path / "x.mp4"),
                     "--model", str(tiny_bundle), "--quiet")
    assert missing.returncode == 2 and "gone.mp4" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "x.mp4").exists()
    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    bad = _lsray("dub-one", str(video), str(audio), "-o", str(tmp_path / "y.mp4"), "--model", str(broken), "--quiet")
    assert bad.returncode == 2 and "config.json" in bad.stderr and not (tmp_path / "y.mp4").exists()


@pytest.mark.slow
def test_8k_frames_work_at_working_resolution_and_paste_back_at_full(flow, tmp_path):
    from lsray.media import VideoWriter

    size = (7680, 4320)
    video = tmp_path / "8k.mp4"
    with VideoWriter(video, 25, crf=23, preset="ultrafast") as writer:
        for i in range(4):
            writer.write(face_frame(i, size=size, scale=9.0))  # a head ~half the frame tall, as an 8K close-up
    audio = write_dub(tmp_path / "dub.wav", 4 / 25)
    result, out = dub(flow, tmp_path, video, audio)
    assert result.status == "done", result.error
    info = probe(out)
    assert (info.width, info.height) == size and count_frames(out) == 4
