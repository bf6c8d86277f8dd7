"""Audio conditioning for lip-sync: LatentSync-exact Whisper features, phoneme branch, fused tokens.

- :mod:`.wave`: the 16 kHz track and the span of it a shard carries (numpy only); :mod:`.mel`: its
  50 Hz row clock and Whisper's log-mel; :mod:`.vad`: where the dub speaks.
- :mod:`.whisper`: multi-layer Whisper features at 50 Hz (upstream-exact up to 30 s, continuous
  beyond), streamed in bounded memory; :mod:`.windows`: per-video-frame windows.
- :mod:`.phoneme`, :mod:`.fused`: the 128-d phoneme branch and the fused (C + 128)-d tokens the
  upgraded UNet attends to.

Import from the submodules. This package hands on no names, so importing one of them costs only
what it needs: a worker that reads the row clock never loads transformers.
"""
