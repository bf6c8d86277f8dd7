"""Evaluation: lip sync (LSE-C / LSE-D), mouth fidelity vs the oracle, temporal quality, identity,
voice. No Ray here.

- :mod:`lsray.eval.lse`: SyncNet's offset search over any :class:`SyncScorer`;
- :mod:`lsray.eval.syncnet_v2`: the original ``syncnet_v2.model`` network, loader and scorer;
- :mod:`lsray.eval.mfcc`: ``python_speech_features``-identical MFCCs;
- :mod:`lsray.eval.video`: mouth PSNR / SSIM / sharpness, flicker, boundary jump, identity drift;
- :mod:`lsray.eval.visemes`: per viseme class from the dub's phoneme timings (lips shut on /p b m/,
  f/v bite, open-vowel opening), measured in the known mouth box;
- :mod:`lsray.eval.clip`: :func:`evaluate_clip` -> :class:`ClipMetrics`, :func:`aggregate`;
- :mod:`lsray.eval.stats`: paired per-clip differences (CI, Wilcoxon p), how every claim is judged;
- :mod:`lsray.eval.per`: phoneme error rate of CTC decodes (the phoneme job's held-out score).
"""

from lsray.eval.clip import ClipMetrics, aggregate, evaluate_clip, face_crops
from lsray.eval.lse import LSEResult, ProjectSyncNetScorer, SyncScorer, lse, lse_from_distances, offset_distances
from lsray.eval.mfcc import syncnet_mfcc
from lsray.eval.syncnet_v2 import SyncNetV2, SyncNetV2Scorer, load_syncnet_v2, save_syncnet_v2
from lsray.eval.video import (
    boundary_jump,
    default_mouth_box,
    face_descriptor,
    flicker,
    identity_drift,
    mouth_psnr,
    mouth_sharpness,
    mouth_ssim,
    oracle_lag,
)

__all__ = [
    "ClipMetrics",
    "LSEResult",
    "ProjectSyncNetScorer",
    "SyncNetV2",
    "SyncNetV2Scorer",
    "SyncScorer",
    "aggregate",
    "boundary_jump",
    "default_mouth_box",
    "evaluate_clip",
    "face_crops",
    "face_descriptor",
    "flicker",
    "identity_drift",
    "load_syncnet_v2",
    "lse",
    "lse_from_distances",
    "mouth_psnr",
    "mouth_sharpness",
    "mouth_ssim",
    "offset_distances",
    "oracle_lag",
    "save_syncnet_v2",
    "syncnet_mfcc",
]
