"""The demo: a bundle trained on the synthetic world (``jobs/train_demo.py``), shipped in this
package, and ``lsray demo``, which dubs held-out synthetic clips with it and scores them.

- :mod:`lsray.demo.catalog`: the demo's dubbing jobs (source, dub, oracle);
- :mod:`lsray.demo.report`: scores vs the oracle and the HTML report;
- :mod:`lsray.demo.cli`: the ``lsray demo`` command.
"""

from pathlib import Path

DEMO_BUNDLE = Path(__file__).resolve().parent / "bundle"
DEMO_SYNCNET = Path(__file__).resolve().parent / "syncnet"
