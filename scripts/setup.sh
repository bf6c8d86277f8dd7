#!/usr/bin/env bash
# Create (or refresh) the project virtualenv at .venv/ and install lsray with its dev extras.
# torch is installed first and pinned to the known-good CPU-capable release so the resolver
# never pulls a multi-GB CUDA build on CPU machines; any torch>=2.4 works elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

# tests/test_report_html.py opens report.html in Debian's Chromium (driven by Playwright, which is
# told to use it and so downloads no browser of its own). Installed when missing and apt can.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
        >/tmp/lsray-apt-chromium.log 2>&1; then
        echo "warning: could not install chromium (see /tmp/lsray-apt-chromium.log); the browser test will fail" >&2
    fi
fi
PY="${PYTHON:-python3}"
VENV="${LSRAY_VENV:-.venv}"
EXTRAS="${LSRAY_EXTRAS:-dev,voice}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet "torch==${LSRAY_TORCH_VERSION:-2.13.0}"
fi
"$VENV/bin/python" -m pip install --quiet -e ".[${EXTRAS}]"
case ",$EXTRAS," in
    *,voice,*) "$VENV/bin/python" scripts/voice_extra.py ;;  # coqui-tts's torchaudio (see the script)
esac
