"""Media I/O for lsray: probe, decode (streamed frames, 16 kHz / native audio), encode, atomic outputs.

Everything runs imageio-ffmpeg's bundled ffmpeg binary (there is no ffprobe) through argument
lists built with ffmpeg-python. Bad inputs raise :class:`lsray.errors.MediaError` naming the file
and the problem; outputs are written atomically. No Ray imports.
"""

from lsray.media.atomic import atomic_output, partial_path
from lsray.media.color import VideoColor, yuv_planes
from lsray.media.decode import (
    ANALYSIS_SAMPLE_RATE,
    Frame,
    audio_sample_rate,
    count_frames,
    iter_frames,
    read_audio,
    read_audio_16k,
    read_audio_native,
)
from lsray.media.encode import VideoWriter, even_size, mux_audio, write_video
from lsray.media.ffmpeg_process import ffmpeg_exe
from lsray.media.probe import (
    MIN_FRAME_SIDE,
    STANDARD_FRAME_RATES,
    MediaInfo,
    exact_frame_rate,
    nearest_standard_frame_rate,
    probe,
    probe_audio,
    probe_video,
)

from lsray.media.concat import assemble_video, concat_segments

__all__ = [
    "assemble_video",
    "concat_segments",
    "ANALYSIS_SAMPLE_RATE",
    "MIN_FRAME_SIDE",
    "STANDARD_FRAME_RATES",
    "Frame",
    "MediaInfo",
    "VideoColor",
    "VideoWriter",
    "atomic_output",
    "audio_sample_rate",
    "count_frames",
    "even_size",
    "exact_frame_rate",
    "ffmpeg_exe",
    "iter_frames",
    "mux_audio",
    "nearest_standard_frame_rate",
    "partial_path",
    "probe",
    "probe_audio",
    "probe_video",
    "read_audio",
    "read_audio_16k",
    "read_audio_native",
    "write_video",
    "yuv_planes",
]
