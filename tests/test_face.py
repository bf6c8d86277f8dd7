"""lsray.face: detection, keyframe tracking, speaker choice, alignment, paste-back, sidecar."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from faces import astronaut, blank, head_motion, two_faces
from lsray.errors import LsrayError, MissingWeightError
from lsray.media.color import VideoColor, yuv_planes
from lsray.face import (
    FaceAligner,
    FaceBlender,
    FaceBox,
    FaceDetector,
    FaceLandmarker,
    FaceTrack,
    FaceTracker,
    SidecarError,
    SpeakerNotFoundError,
    SpeakerSpecError,
    alignment_affine,
    load_inpaint_mask,
    load_sidecar,
    parse_speaker_spec,
    regenerated_region,
    select_speaker,
    smooth_points,
    template_points,
    track_from_sidecar,
    upstream_face_size,
)


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as d:
        yield d


@pytest.fixture(scope="module")
def landmarker():
    with FaceLandmarker() as lm:
        yield lm


@pytest.fixture(scope="module")
def motion():
    return head_motion(20)


@pytest.fixture(scope="module")
def inpaint_mask(parity_dir):
    return load_inpaint_mask(parity_dir / "mask.png", 256)


def _ground_truth_centre(motions: np.ndarray, i: int, c0: tuple[float, float]) -> np.ndarray:
    return motions[i] @ np.array([c0[0], c0[1], 1.0])


def test_detection_finds_astronaut(detector):
    boxes = detector.detect(astronaut())
    assert len(boxes) == 1
    box = boxes[0]
    assert box.score > 0.8
    assert box.contains(226, 120)  # between the eyes
    assert 80 < box.width < 140


def test_tracking_follows_head_and_detects_only_on_keyframes(detector, landmarker, motion):
    frames, motions = motion
    c0 = detector.detect(frames[0])[0].centre
    calls_before = detector.calls
    result = FaceTracker(detector, landmarker, keyframe_interval=5).track(iter(frames))
    assert detector.calls - calls_before == 4 == result.detector_calls  # frames 0, 5, 10, 15
    assert result.num_frames == 20 and result.num_no_face == 0
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert track.frame_indices == list(range(20))
    errors = [np.linalg.norm(np.array(b.centre) - _ground_truth_centre(motions, i, c0)) for i, b in zip(track.frame_indices, track.boxes)]
    # Ground truth = frame 0's detection moved by the known motion; the detector itself moves a
    # few px under a 3 degree turn, so allow 6% of the face width (~6 px), mean under 4 px.
    assert max(errors) < 0.06 * track.boxes[0].width and np.mean(errors) < 4.0, errors
    widths = [b.width for b in track.boxes]
    assert max(widths) / min(widths) < 1.1  # the box does not inflate between keyframes


def test_tracking_reads_the_luma_plane_and_converts_only_what_the_detector_sees(detector, landmarker, motion, monkeypatch):
    """From I420 planes (what prepare decodes) the tracker follows the same head as from RGB: the
    flow runs on the Y plane and ``to_rgb`` is called for the keyframes alone. The flow reads only
    the region around the points, which gives the whole frame's result."""
    import lsray.face.track as track_module

    frames, _ = motion
    planes = [cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in frames]  # BT.601 limited: untagged
    converted: list[int] = []

    def to_rgb(p: np.ndarray) -> np.ndarray:
        converted.append(1)
        return VideoColor().yuv_to_rgb(p)

    def points(result) -> np.ndarray:
        assert len(result.tracks) == 1 and result.num_no_face == 0
        return result.tracks[0].points_array()  # (20, 3, 2)

    from_rgb = points(FaceTracker(detector, landmarker, keyframe_interval=5).track(frames))
    from_planes = FaceTracker(detector, landmarker, keyframe_interval=5).track(planes, to_rgb=to_rgb)
    assert len(converted) == from_planes.detector_calls == 4 and from_planes.frame_shape == frames[0].shape[:2]
    assert np.abs(points(from_planes) - from_rgb).max() < 1.0  # px, on a ~100 px face

    h, w = frames[0].shape[:2]
    x0, y0, x1, y1 = track_module._flow_region(from_rgb[0], (h, w))
    assert x0 % 8 == 0 and y0 % 8 == 0 and (x1 - x0) * (y1 - y0) < 0.6 * h * w  # less than the frame
    monkeypatch.setattr(track_module, "_FLOW_MARGIN", 10**6)  # every region is the whole frame
    whole = points(FaceTracker(detector, landmarker, keyframe_interval=5).track(frames))
    assert np.abs(whole - from_rgb).max() < 0.01


def test_alignment_template_and_sizes():
    assert upstream_face_size(256) == (210, 280) and upstream_face_size(512) == (420, 560)
    pts = template_points(256)
    a = alignment_affine(pts, 256)  # template points in upstream's crop -> just the resize
    assert np.allclose(a[:, :2], np.diag([256 / 210, 256 / 280]))
    with pytest.raises(ValueError):
        alignment_affine(pts, 384)


def test_smooth_points_reduces_noise_and_restarts_at_gaps():
    rng = np.random.default_rng(0)
    clean = np.tile(np.array([[100.0, 100.0], [150.0, 100.0], [125.0, 130.0]]), (40, 1, 1))
    noisy = clean + rng.normal(0, 1.0, clean.shape)
    idx = list(range(20)) + list(range(30, 50))
    sm = smooth_points(noisy, idx, radius=3)
    assert np.abs(sm - clean).std() < 0.6 * np.abs(noisy - clean).std()
    jump = noisy.copy()
    jump[20:] += 50.0  # a cut at the gap must not be blended
    sm = smooth_points(jump, idx, radius=3)
    assert np.abs(sm[19] - clean[19]).max() < 5 and np.abs(sm[20] - clean[20] - 50).max() < 5
    assert np.array_equal(smooth_points(noisy, idx, radius=0), noisy)


def test_alignment_is_smooth_and_roundtrip_reproduces_frame(detector, landmarker, motion, inpaint_mask):
    frames, motions = motion
    track = FaceTracker(detector, landmarker, keyframe_interval=5).track(frames).tracks[0]

    def template_in_frame(aligner):
        faces = [ff.face for ff in aligner.align_track(iter(frames), track)]
        assert all(f is not None for f in faces) and aligner.passthrough_frames == 0
        tmpl = np.c_[np.array([[73.0, 51.0], [198.0, 51.0], [128.0, 102.0]]), np.ones(3)]
        return faces, np.stack([tmpl @ f.inverse_affine.T for f in faces])

    faces, smooth = template_in_frame(FaceAligner(256, smoothing_radius=2))
    _, raw = template_in_frame(FaceAligner(256, smoothing_radius=0))
    assert faces[0].crop.shape == (256, 256, 3) and faces[0].crop.dtype == np.uint8
    assert faces[0].affine.shape == (2, 3)
    # Jitter = second difference of the mapped template points over time.
    jitter = lambda p: np.abs(np.diff(p, n=2, axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.9 * jitter(raw)  # measured 0.26 vs 0.32 px
    # The aligned face follows the head: the crop<-frame mapping tracks the true motion.
    m0 = np.vstack([motions[0], [0, 0, 1]])
    for i in (5, 10, 15):
        expect = (np.vstack([motions[i], [0, 0, 1]]) @ np.linalg.inv(m0) @ np.c_[smooth[0], np.ones(3)].T).T[:, :2]
        assert np.abs(smooth[i] - expect).max() < 4.0

    # Pasting the unchanged crop back reproduces the frame inside the mask region.
    blender = FaceBlender(256, region=regenerated_region(inpaint_mask))
    face = faces[7]
    out = blender.paste(frames[7], face.crop, face.affine)
    alpha = blender.frame_alpha(face.affine, frames[7].shape)
    inside = alpha > 0.5
    assert inside.sum() > 2000
    err = np.abs(out.astype(int) - frames[7].astype(int))[inside]
    assert err.mean() < 3.0, err.mean()
    assert np.array_equal(out[alpha == 0], frames[7][alpha == 0])


def test_pixels_outside_feathered_mask_are_bit_identical(detector, landmarker, inpaint_mask):
    frame = astronaut()
    track = FaceTracker(detector, landmarker, keyframe_interval=1).track([frame]).tracks[0]
    face = next(iter(FaceAligner(256).align_track([frame], track))).face
    region = regenerated_region(inpaint_mask)
    blender = FaceBlender(256, region=region)
    other = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = blender.paste(frame, other, face.affine)
    # Hard (unfeathered) region warped into the frame, grown by 2 px for interpolation.
    hard = cv2.warpAffine((region > 0.5).astype(np.uint8), face.affine, frame.shape[1::-1], flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    grown = cv2.dilate(hard, np.ones((5, 5), np.uint8)) > 0
    assert np.array_equal(out[~grown], frame[~grown])
    alpha = blender.frame_alpha(face.affine, frame.shape)
    assert np.array_equal(out[alpha == 0], frame[alpha == 0])
    assert (out[alpha > 0.99] != frame[alpha > 0.99]).any(axis=-1).mean() > 0.9  # the inside did change
    assert not grown[:60].any() and grown.sum() < 0.2 * grown.size  # eyes and background untouched


@pytest.mark.parametrize("color", [VideoColor(), VideoColor("tv", "bt709"), VideoColor("pc", "bt709")])
def test_pasting_in_yuv_is_the_rgb_paste_without_touching_other_samples(detector, landmarker, inpaint_mask, color):
    """``paste_yuv`` on an I420 frame: outside the warped alpha every Y, U and V sample is the
    frame's own; inside, converted to RGB the way ffmpeg decodes that matrix and range, it is
    the RGB paste up to rounding and 4:2:0 chroma."""
    frame = astronaut()  # 512 x 512: whole chroma samples
    track = FaceTracker(detector, landmarker, keyframe_interval=1).track([frame]).tracks[0]
    face = next(iter(FaceAligner(256).align_track([frame], track))).face
    blender = FaceBlender(256, region=regenerated_region(inpaint_mask))
    crop = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 256, (256, 256, 3), dtype=np.uint8), (9, 9), 4)
    ycc = color.rgb_to_yuv(frame)
    h, w = frame.shape[:2]
    i420 = np.concatenate([np.rint(ycc[..., 0]).reshape(-1), np.rint(ycc[..., 1].reshape(h // 2, 2, w // 2, 2).mean((1, 3))).reshape(-1),
                           np.rint(ycc[..., 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3))).reshape(-1)]).astype(np.uint8).reshape(-1, w)
    out = blender.paste_yuv(i420, crop, face.affine, color)
    alpha = blender.frame_alpha(face.affine, frame.shape)
    y, u, v = yuv_planes(out)
    y0, u0, v0 = yuv_planes(i420)
    assert np.array_equal(y[alpha == 0], y0[alpha == 0])
    untouched = alpha.reshape(h // 2, 2, w // 2, 2).max((1, 3)) == 0
    assert np.array_equal(u[untouched], u0[untouched]) and np.array_equal(v[untouched], v0[untouched])
    assert (y != y0).mean() < 0.2 and (y[alpha > 0.99] != y0[alpha > 0.99]).mean() > 0.9

    def as_rgb(planes: np.ndarray) -> np.ndarray:  # the matrix's inverse, chroma repeated 2 x 2
        yy, uu, vv = (p.astype(np.float64) for p in yuv_planes(planes))
        uu, vv = (np.repeat(np.repeat(p, 2, 0), 2, 1) for p in (uu, vv))
        kr, kb = (0.2126, 0.0722) if color.space == "bt709" else (0.299, 0.114)
        if color.range == "pc":
            yn, cb, cr = yy / 255, (uu - 128) / 255, (vv - 128) / 255
        else:
            yn, cb, cr = (yy - 16) / 219, (uu - 128) / 224, (vv - 128) / 224
        r, b = yn + 2 * (1 - kr) * cr, yn + 2 * (1 - kb) * cb
        g = (yn - kr * r - kb * b) / (1 - kr - kb)
        return np.clip(np.stack([r, g, b], -1) * 255, 0, 255)

    want = blender.paste(frame, crop, face.affine).astype(np.float64)
    inside = alpha > 0.5
    err = np.abs(as_rgb(out) - want)[inside]
    base = np.abs(as_rgb(i420) - frame)[inside]  # what 4:2:0 alone costs these pixels
    print(f"{color}: |yuv paste - rgb paste| {err.mean():.2f} (4:2:0 of the frame alone {base.mean():.2f})")
    assert err.mean() < base.mean() + 1.5


def test_no_face_frames_pass_through_and_are_counted(detector, landmarker):
    face = astronaut()
    frames = [face, face, blank(512, 512), blank(512, 512), face]
    result = FaceTracker(detector, landmarker, keyframe_interval=1).track(frames)
    assert result.no_face_frames == [2, 3]
    track = select_speaker(result.tracks, "largest")
    aligner = FaceAligner(256)
    out = list(aligner.align_track(frames, track))
    assert [ff.face is None for ff in out] == [False, False, True, True, track.box_at(4) is None]
    assert aligner.passthrough_frames == 2 + (track.box_at(4) is None)
    assert out[2].frame is frames[2]
    # A clip without any face: nothing raises, everything passes through.
    empty = [blank() for _ in range(3)]
    r = FaceTracker(detector, landmarker, keyframe_interval=2).track(empty)
    assert r.tracks == [] and r.num_no_face == 3
    assert select_speaker(r.tracks, "largest") is None and select_speaker(r.tracks, "auto", audio_envelope=np.ones(3)) is None
    aligner = FaceAligner(512)
    assert all(ff.face is None for ff in aligner.align_track(empty, None)) and aligner.passthrough_frames == 3


def test_speaker_largest_and_point_pick_the_right_face(detector, landmarker):
    frame, big, small = two_faces()
    result = FaceTracker(detector, landmarker, keyframe_interval=2).track([frame] * 3)
    assert len(result.tracks) == 2

    def inside(track, win):
        cx, cy = track.boxes[0].centre
        return win[0] <= cx < win[2] and win[1] <= cy < win[3]

    assert inside(select_speaker(result.tracks, "largest"), big)
    assert inside(select_speaker(result.tracks, None), big)
    assert inside(select_speaker(result.tracks, "468,180@0.04", fps=25), small)
    assert inside(select_speaker(result.tracks, "155, 160 @ 0", fps=25), big)
    with pytest.raises(SpeakerNotFoundError, match="no face contains pixel"):
        select_speaker(result.tracks, "620,20@0", fps=25)


def _synthetic_track(tid: int, x0: float, mouth: np.ndarray) -> FaceTrack:
    t = FaceTrack(tid)
    for i, m in enumerate(mouth):
        t.append(i, FaceBox(x0, 0, x0 + 100, 100), np.array([[x0 + 30, 30], [x0 + 70, 30], [x0 + 50, 50]]), m)
    return t


def test_speaker_auto_follows_audio_envelope():
    rng = np.random.default_rng(2)
    env = np.abs(np.sin(np.linspace(0, 12, 60))) + 0.05 * rng.random(60)
    speaker = _synthetic_track(0, 300, 0.3 * env + 0.02 * rng.random(60))
    listener = _synthetic_track(1, 0, 0.05 + 0.02 * rng.random(60))
    bigger = _synthetic_track(2, 500, 0.05 + 0.02 * rng.random(60))
    bigger.boxes = [FaceBox(500, 0, 700, 200) for _ in bigger.boxes]
    tracks = [listener, speaker, bigger]
    assert select_speaker(tracks, "auto", audio_envelope=env) is speaker
    assert select_speaker(tracks, "largest") is bigger
    assert select_speaker(tracks, "auto", audio_envelope=None) is bigger  # no audio: fall back


def test_bad_speaker_spec_gives_clear_error():
    assert parse_speaker_spec("largest").kind == "largest"
    assert parse_speaker_spec(" AUTO ").kind == "auto"
    p = parse_speaker_spec("640,360@2.5")
    assert (p.kind, p.x, p.y, p.t) == ("point", 640, 360, 2.5)
    for bad in ("biggest", "640,360", "640;360@1", "x,y@t", "1,2@", "-5,3@1", ""):
        with pytest.raises(SpeakerSpecError, match="bad speaker spec") as e:
            parse_speaker_spec(bad)
        assert isinstance(e.value, LsrayError)
    with pytest.raises(SpeakerSpecError, match="'largest', 'auto' or 'X,Y@T'"):
        parse_speaker_spec("speaker2")


def test_sidecar_bypasses_detection(tmp_path, detector, landmarker, monkeypatch):
    frames, _ = head_motion(6)
    box = detector.detect(frames[0])[0]
    mesh = landmarker.landmarks(frames[3], box)
    doc = {
        "frames": [{"index": i, "box": [box.x0, box.y0, box.x1, box.y1]} for i in (0, 1, 2)]
        + [{"index": 3, "landmarks": mesh.tolist()}, {"index": 4, "landmarks": [[200, 90], [252, 93], [225, 118]]}]
    }
    path = tmp_path / "faces.json"
    path.write_text(json.dumps(doc))

    def no_detection(*a, **k):
        raise AssertionError("the detector must not run when a sidecar is given")

    monkeypatch.setattr(FaceDetector, "detect", no_detection)
    result = track_from_sidecar(iter(frames), load_sidecar(path), landmarker)
    assert result.detector_calls == 0 and result.no_face_frames == [5]
    (track,) = result.tracks
    assert track.frame_indices == [0, 1, 2, 3, 4]
    assert np.allclose(track.points_at(4), [[200, 90], [252, 93], [225, 118]])
    faces = [ff.face for ff in FaceAligner(256).align_track(frames, track)]
    assert all(f is not None for f in faces[:5]) and faces[5] is None

    for bad in ({"frames": [{"index": 0}]}, {"frames": [{"index": 0, "box": [5, 5, 1, 1]}]},
                {"frames": [{"index": 0, "landmarks": [[1, 2]] * 5}]}, {"frame": []}):
        path.write_text(json.dumps(bad))
        with pytest.raises(SidecarError):
            load_sidecar(path)


def test_inpaint_mask_loads_and_resizes(parity_dir, tmp_path):
    m256 = load_inpaint_mask(parity_dir / "mask.png", 256)
    m512 = load_inpaint_mask(parity_dir / "mask.png", 512)
    assert m256.shape == (256, 256) and m512.shape == (512, 512)
    assert m256.dtype == np.float32 and 0 <= m256.min() and m256.max() <= 1
    assert m256[200, 128] == 0 and m256[20, 128] == 1  # mouth regenerated, eyes kept
    assert abs(m512.mean() - m256.mean()) < 0.01
    with pytest.raises(MissingWeightError, match="inpainting mask"):
        load_inpaint_mask(tmp_path / "nope.png")
