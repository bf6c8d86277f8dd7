"""Two or more bundles on the same demo clips, clip by clip: is the new bundle better than the old?

    lsray demo --model OLD --clips 40 --voice builtin --out runs/old    # and the same for NEW
    python -m benchmarks.demo_compare v1=runs/old v2=runs/new [--out benchmarks/results/demo_v2.json]
    python -m benchmarks.demo_compare v1=benchmarks/results/demo_v2.json@v1 v3=runs/v3   # a stored run

Reads each run's ``metrics.json`` (the demo's report; same ``--clips`` and ``--seed``, so the same
held-out clips), or a run stored in an earlier comparison's JSON (``FILE.json@NAME``: its summary
row and per-clip values, so a new variant is paired with it without its output folder), and
prints (1) each run's summary as a README table, with keeping the source mouth as a row of its
own, and (2) every later run minus the first, clip by clip
(:func:`lsray.eval.stats.paired_difference`: mean +- 95 % CI, Wilcoxon p, clips ahead), on mouth
PSNR, sharpness, the LSE-C margin over another clip's audio, lips shut on /p b m/, open-vowel
opening, flicker and the jump at window boundaries. Viseme hits are pooled over frames in (1) and
per clip in (2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


COLUMNS = [("mouth_psnr", "mouth PSNR dB", 2), ("mouth_ssim", "mouth SSIM", 3), ("mouth_sharpness", "sharpness", 2),
           ("lse_c", "LSE-C", 3), ("lse_c_unsynced", "LSE-C, another clip's audio", 3), ("lse_d", "LSE-D", 2),
           ("bilabial_hit", "bilabial hit", 2), ("labiodental_hit", "f/v hit", 2), ("open_vowel", "open vowel", 2),
           ("flicker", "flicker", 2), ("boundary_jump", "boundary jump", 2), ("seconds_per_frame", "s / frame", 3),
           ("speaker_similarity", "speaker similarity", 3)]
#: (key, header) of the per-clip comparisons; ``lse_c_margin`` is LSE-C minus another clip's audio's
PAIRED = [("mouth_psnr", "mouth PSNR dB"), ("mouth_sharpness", "sharpness"), ("lse_c_margin", "LSE-C margin"),
          ("bilabial_hit", "bilabial hit"), ("open_vowel", "open vowel"), ("flicker", "flicker"),
          ("boundary_jump", "boundary jump")]


def per_clip(run: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """clip id -> the PAIRED values of one demo run (None where a clip was not scored)."""
    from lsray.demo.report import lse_c_margin

    out = {}
    for c in run["clips"]:
        m = c.get("metrics") or {}
        margin = lse_c_margin(m.get("lse_c"), c.get("lse_c_unsynced"))
        out[c["clip_id"]] = {**{k: m.get(k) for k, _ in PAIRED}, "lse_c_margin": margin}
    return out


def _columns(row: dict[str, Any], suffix: str = "") -> dict[str, Any]:
    """The COLUMNS values of a summary (``suffix``: ``_keep_source`` for that row's)."""
    return {k: row.get(f"{k}{suffix}") for k, _, _ in COLUMNS}


def from_demo(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run as :func:`compare` takes it, from a demo's ``metrics.json``: its summary, the
    keep-the-source-mouth summary of the same clips, and its per-clip values."""
    summary = metrics["summary"]
    return {"summary": _columns(summary), "keep_source": _columns(summary, "_keep_source"),
            "clips": per_clip(metrics)}


def from_stored(result: dict[str, Any], name: str) -> dict[str, Any]:
    """The run ``name`` of an earlier :func:`compare` result (its JSON), as :func:`compare` takes it."""
    rows = {r["run"]: r for r in result["summary"]}
    if name not in result["per_clip"]:
        raise ValueError(f"no run {name!r} stored there; it holds {', '.join(repr(r) for r in result['runs'])}")
    return {"summary": _columns(rows[name]), "keep_source": _columns(rows["keep the source mouth"]),
            "clips": result["per_clip"][name]}


def load(where: str) -> dict[str, Any]:
    """A demo output folder, or ``FILE.json@NAME`` (a run stored in an earlier comparison)."""
    path, at, name = where.rpartition("@")
    if at and path.endswith(".json"):
        return from_stored(json.loads(Path(path).read_text()), name)
    return from_demo(json.loads((Path(where) / "metrics.json").read_text()))


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Summaries (keep source first), every run after the first minus the first, clip by clip, and
    each run's per-clip values (so a later variant can be paired with these runs without their
    output folders). ``runs``: name -> :func:`from_demo` / :func:`from_stored`."""
    from lsray.eval.stats import paired_difference

    names = list(runs)
    rows = [{"run": "keep the source mouth", **runs[names[0]]["keep_source"]}]
    rows += [{"run": name, **runs[name]["summary"]} for name in names]
    clips = {name: runs[name]["clips"] for name in names}
    ref = clips[names[0]]
    paired = {}
    for name in names[1:]:
        mine = clips[name]
        ids = [i for i in mine if i in ref]
        paired[name] = {key: paired_difference([mine[i][key] for i in ids], [ref[i][key] for i in ids]).as_dict()
                        for key, _ in PAIRED}
    return {"runs": names, "summary": rows, "paired_vs_first": paired, "per_clip": clips}


def paired_markdown(result: dict[str, Any]) -> str:
    from lsray.eval.stats import PairedDifference

    first = result["runs"][0]
    lines = [f"| minus {first}, per clip | " + " | ".join(h for _, h in PAIRED) + " |", "|---" * (len(PAIRED) + 1) + "|"]
    for name, diffs in result["paired_vs_first"].items():
        cells = [PairedDifference(**diffs[key]).describe(2 if key == "mouth_psnr" else 3) for key, _ in PAIRED]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="NAME=DIR|NAME=FILE.json@RUN",
                   help="demo output folders or stored runs; the first is the reference")
    p.add_argument("--out", help="write the comparison as JSON here")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.runs:
        name, _, where = spec.partition("=")
        if not where:
            p.error(f"{spec}: expected NAME=DIR or NAME=FILE.json@RUN")
        try:
            runs[name] = load(where)
        except (OSError, ValueError, KeyError) as exc:
            p.error(f"{spec}: {exc}")
    from benchmarks.upgrades_bench import markdown_table

    result = compare(runs)
    print(markdown_table(result["summary"], COLUMNS, lead=("run",)))
    print()
    print(paired_markdown(result))
    if args.out:
        from lsray.storage import write_json

        write_json(str(args.out), result)  # atomic, folders made
    return 0


if __name__ == "__main__":
    sys.exit(main())
