"""Run a command and print its peak resident memory (MB) as measured by ``wait4``.

Why a separate, tiny launcher: on Linux a child started with vfork (what Python's subprocess
uses) inherits the *parent's* memory high-water mark into its own ``ru_maxrss`` at exec. A
benchmark that first builds large inputs in-process would otherwise report its own peak as the
child's. This launcher's own peak is a few MB, so what it prints is the command's.

    python -m benchmarks.peak_rss CMD [ARGS...]   # prints {"peak_rss_mb": ..., "exit": ...}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    proc = subprocess.Popen(sys.argv[1:])
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"peak_rss_mb": usage.ru_maxrss / 1024, "exit": code}), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
