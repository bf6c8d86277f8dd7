"""Finish installing the ``voice`` extra (Coqui TTS) into the current environment.

coqui-tts imports torchaudio (and, on torch >= 2.9, checks for torchcodec). PyPI has no
torchaudio built for every torch release; when the installed torch has no matching torchaudio,
the newest compatible one is installed WITHOUT dependencies (so torch is not replaced) and its
compiled extension is removed: torchaudio then runs as pure Python, which is all the Coqui
voice-conversion models use (resampling, mel spectrograms, VAD). Measured facts are in
../shared/INSTALL-NOTES.md. Idempotent: does nothing when ``import TTS.api`` already works.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import subprocess
import sys

TORCHAUDIO_FALLBACK = "torchaudio==2.11.0"
TORCHCODEC_FALLBACK = "torchcodec==0.13.0"


def tts_imports() -> bool:
    try:
        importlib.import_module("TTS.api")
        return True
    except Exception:  # noqa: BLE001 - any import failure means the recipe below is needed
        return False


def main() -> int:
    if tts_imports():
        return 0
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, TORCHAUDIO_FALLBACK, TORCHCODEC_FALLBACK], check=True)
    lib = pathlib.Path(importlib.util.find_spec("torchaudio").origin).parent / "lib"
    for so in lib.glob("*.so"):
        so.unlink()  # built against another torch: drop it, torchaudio falls back to Python
    result = subprocess.run([sys.executable, "-c", "import TTS.api"], capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        print("error: coqui-tts still does not import; the voice extra is unusable here", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
