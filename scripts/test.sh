#!/usr/bin/env bash
# Run the test suite (what CI runs through .ci/run). Extra arguments go to pytest, e.g.
#   bash scripts/test.sh -k "cli or bundle"
# The LatentSync parity fixtures are read in place from ../shared/fixtures/latentsync (or
# $LSRAY_PARITY_FIXTURES); without them the tests cannot prove parity, so this fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LSRAY_VENV:-.venv}"
FIXTURES="${LSRAY_PARITY_FIXTURES:-$(cd .. && pwd)/shared/fixtures/latentsync}"
if [ ! -f "$FIXTURES/unet_small/config.json" ]; then
    echo "error: LatentSync parity fixtures not found at $FIXTURES" >&2
    echo "       (put them at ../shared/fixtures/latentsync or set LSRAY_PARITY_FIXTURES)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "error: $VENV/bin/python not found: run 'bash scripts/setup.sh' first" >&2
    exit 1
fi
export LSRAY_PARITY_FIXTURES="$FIXTURES"
status=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --durations=30 --timeout="${LSRAY_TEST_TIMEOUT:-900}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
