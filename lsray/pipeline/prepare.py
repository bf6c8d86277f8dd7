"""Stage 1, prepare: probe the inputs, decide the output timing, find and follow the speaker's face.

This is the first pass over the video (detection on keyframes, optical flow in between); only
per-frame alignment points are kept, so a clip of any length costs a few bytes a frame here.
The second half of the stage, :class:`ShardStage`, fans a plan out into shards of whole windows.
"""

from __future__ import annotations

import time

import numpy as np

from lsray.audio.mel import log_mel_max, num_rows
from lsray.audio.phoneme import wave_mean_std
from lsray.audio.vad import speech_at, speech_rows
from lsray.audio.wave import WaveSlice
from lsray.audio.whisper import samples_for_rows
from lsray.audio.windows import rows_for_times
from lsray.errors import MediaError
from lsray.face import FaceAligner, FaceTracker, load_sidecar, select_speaker, smooth_points, track_from_sidecar
from lsray.media import iter_frames, probe_audio, probe_video, read_audio_16k
from lsray.media.decode import scaled_size
from lsray.pipeline.frames import face_frames
from lsray.pipeline.options import ClipSettings
from lsray.pipeline.records import ClipPlan, ClipShard, ClipSpec, Keyframes
from lsray.pipeline.timeline import make_timeline

#: Faces are found and followed on frames decoded at most this tall; their points are scaled back
#: to the source's pixels. A face large enough to dub is still >= the mesh model's 192 px input at
#: this height, and a 1080p clip's tracking (decode, grey, optical flow) costs ~half as much.
TRACK_HEIGHT = 720

#: Frames over which the mouth fades between the dubbed and the original one (no pops).
MOUTH_RAMP_FRAMES = 3


def _frame_envelope(path: str, fps: float, frames: int) -> np.ndarray | None:
    """RMS of the source video's own audio per frame (for ``--speaker auto``), or None."""
    try:
        wave = read_audio_16k(path)
    except MediaError:
        return None
    per = 16000 / fps
    idx = np.minimum((np.arange(frames + 1) * per).astype(np.int64), len(wave))
    csum = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    return np.sqrt((csum[idx[1:]] - csum[idx[:-1]]) / np.maximum(np.diff(idx), 1))


class PrepareStage:
    """ClipSpec -> ClipPlan. Holds the face detector and mesh (built once per worker)."""

    def __init__(self, keyframe_interval: int = 5, smoothing_radius: int = 2, track_height: int = TRACK_HEIGHT) -> None:
        self.tracker = FaceTracker(keyframe_interval=keyframe_interval)
        self.smoothing_radius = smoothing_radius
        self.track_height = track_height

    def __call__(self, spec: ClipSpec, settings: ClipSettings, staging: str) -> ClipPlan:
        """``spec`` with local input paths; ``settings`` from ``spec.options.resolve``; ``staging``
        the clip's hand-over folder/prefix (kept in the plan for the later steps)."""
        t0 = time.perf_counter()
        video = probe_video(spec.video)
        dub = probe_audio(spec.audio)
        height = None if spec.face_sidecar else self.track_height  # a sidecar's points are in source pixels
        width, height = scaled_size(video, height)
        scale = (width / video.width, height / video.height)  # tracked px per source px (x, y)
        # 4:2:0 planes (even sizes): the tracker makes RGB only of the frames its detector sees
        planes = not spec.face_sidecar and width % 2 == 0 and height % 2 == 0
        frames = (f.rgb for f in iter_frames(spec.video, info=video, height=height,
                                             pix_fmt="yuv420p" if planes else "rgb24"))
        if spec.face_sidecar:
            result = track_from_sidecar(frames, load_sidecar(spec.face_sidecar), self.tracker.landmarker)
        else:
            result = self.tracker.track(frames, to_rgb=video.color.yuv_to_rgb if planes else None)
        n_src = result.num_frames
        if n_src == 0:
            raise MediaError(spec.video, "no decodable frames")
        opts = spec.options
        envelope = _frame_envelope(spec.video, float(video.fps), n_src) if opts.speaker == "auto" and video.has_audio else None
        track = select_speaker(result.tracks, opts.speaker, float(video.fps), envelope, scale)
        points = np.full((n_src, 3, 2), np.nan, dtype=np.float32)
        if track is not None and len(track):
            tracked = smooth_points(track.points_array(), track.frame_indices, self.smoothing_radius)
            points[track.frame_indices] = tracked / np.float32(scale)  # (n, 3, 2) source pixels
        timeline = make_timeline(opts.sync_mode, video.fps, n_src, float(dub.duration or 0.0))
        return ClipPlan(
            spec=spec, settings=settings, fps=video.fps, width=video.width, height=video.height, timeline=timeline,
            points=points, resolution=settings.resolution, track=spec.audio,
            staging=staging, warnings=list(timeline.warnings),
            faces_found=int(np.isfinite(points[:, 0, 0]).sum()),
            timings={"face": time.perf_counter() - t0}, color=video.color,
        )


def mouth_weights(has_face: np.ndarray, speech: np.ndarray, keep_silent_mouth: bool) -> np.ndarray:
    """Per output frame: 1 = dubbed mouth, 0 = original; ramps over MOUTH_RAMP_FRAMES, and never
    above 0 where there is no face (those frames pass through untouched)."""
    target = (has_face & speech) if keep_silent_mouth else has_face
    kernel = np.ones(MOUTH_RAMP_FRAMES, np.float32) / MOUTH_RAMP_FRAMES
    ramped = np.convolve(target.astype(np.float32), kernel, mode="same")  # fades in and out of speech
    return np.where(target, ramped, 0.0).astype(np.float32)


class ShardStage:
    """ClipPlan -> ClipShards of whole 16-frame windows, each with its aligned crops (pass 2).

    The dubbed track is read once at 16 kHz for its clip-level statistics (Whisper's log-mel max,
    the phoneme branch's normalisation, speech activity); each shard then carries only the
    sample span its audio windows read.
    """

    def __init__(self, dubbed_only: bool = False) -> None:
        #: Decode and align only the shards with a frame to dub (:meth:`ClipShard.changes`). The
        #: dubbing path sets it: render pastes nothing into the other shards, so their crops
        #: (left black) are never read. Training shards need every face, so it is off by default.
        self.dubbed_only = dubbed_only

    def __call__(self, plan: ClipPlan):  # -> Iterator[ClipShard]
        t0 = time.perf_counter()
        clip = _ClipAudio(plan)
        aligner = FaceAligner(plan.resolution, smoothing_radius=0)  # points were smoothed in prepare
        s = plan.resolution
        bounds = plan.shard_bounds()
        setup = time.perf_counter() - t0
        for k, (start, stop) in enumerate(bounds):
            t1 = time.perf_counter()
            n = stop - start
            shard = ClipShard(
                plan=plan, index=k, count=len(bounds), start=start, stop=stop,
                crops=np.zeros((n, s, s, 3), np.uint8), affines=np.zeros((n, 2, 3), np.float32),
                has_face=clip.has_face[start:stop].copy(), mouth_weight=clip.weights[start:stop],
                wave=clip.slice(np.arange(start, stop)), mel_max=clip.mel_max, phoneme_stats=clip.stats,
            )
            if not self.dubbed_only or shard.changes():
                for i, j, rgb in face_frames(plan, start, stop, shard.has_face):
                    aligned = aligner.align_frame(rgb, plan.points[j].astype(np.float64), j)
                    shard.crops[i - start], shard.affines[i - start] = aligned.crop, aligned.affine
            shard.timings = {"face": time.perf_counter() - t1 + (setup if k == 0 else 0.0)}
            yield shard

    def keyframes(self, plan: ClipPlan, stride: int) -> Keyframes | None:
        """The clip's keyframes (output frames 0, stride, 2 stride, ...) aligned exactly as the
        shards align them, for the anchor pass; None when no frame of the clip is dubbed.
        Decodes the clip once more but aligns only the keyframes."""
        t0 = time.perf_counter()
        clip = _ClipAudio(plan)
        if not np.any(clip.weights > 0):
            return None
        frames = np.arange(0, plan.timeline.output_frames, stride)
        s = plan.resolution
        crops = np.zeros((len(frames), s, s, 3), np.uint8)
        face = clip.has_face[frames]
        aligner = FaceAligner(s, smoothing_radius=0)
        wanted = np.zeros(int(frames[-1]) + 1, bool)
        wanted[frames[face]] = True
        for i, j, rgb in face_frames(plan, 0, len(wanted), wanted):
            crops[i // stride] = aligner.align_frame(rgb, plan.points[j].astype(np.float64), j).crop
        return Keyframes(plan=plan, stride=stride, frames=frames, crops=crops, has_face=face,
                         mouth_weight=clip.weights[frames], wave=clip.slice(frames), mel_max=clip.mel_max,
                         phoneme_stats=clip.stats, timings={"face": time.perf_counter() - t0})


class _ClipAudio:
    """A clip's dubbed track at 16 kHz and what is decided from it for the whole clip: Whisper's
    log-mel max, the phoneme branch's normalisation, and which output frames get a dubbed mouth."""

    def __init__(self, plan: ClipPlan) -> None:
        self.wave = read_audio_16k(plan.track)
        self.total_rows = num_rows(len(self.wave))
        self.mel_max, self.stats = log_mel_max(self.wave), wave_mean_std(self.wave)
        self.out_times = np.arange(plan.timeline.output_frames) / float(plan.fps)
        src = plan.timeline.source_index(np.arange(plan.timeline.output_frames))
        self.has_face = np.isfinite(plan.points[src, 0, 0])
        speech = speech_at(speech_rows(self.wave), self.out_times)
        self.weights = mouth_weights(self.has_face, speech, plan.spec.options.keep_silent_mouth)

    def slice(self, frames: np.ndarray) -> WaveSlice:
        """The sample span the audio windows of output ``frames`` read (a shard carries only it)."""
        lo, hi = samples_for_rows(rows_for_times(self.out_times[frames], self.total_rows), len(self.wave))
        return WaveSlice(self.wave[lo:hi].copy(), lo, len(self.wave))
