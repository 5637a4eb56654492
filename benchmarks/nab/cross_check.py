"""How much of the ensemble's NAB score is tuning to the corpus?

Usage, from the repository root::

    .venv/bin/python -m benchmarks.nab.cross_check [--corpus ../shared/corpus/nab]

The ensemble's defaults were chosen by scoring many settings on all 43
files, which flatters them. This script splits the files in two halves
(alternating, in name order), picks the best of a small grid of settings on
one half, and scores that choice on the other half, both ways. Each half is
scored as NAB scores a corpus: threshold chosen per profile on that half.
The gap between "best on this half" and "chosen on the other half" is the
optimism of tuning on the test data.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from benchmarks.nab.run_nab import DEFAULT_CORPUS, NabFile, load_corpus
from benchmarks.nab.scoring import best_threshold, load_profiles

from logweir.detectors import Ensemble, EnsembleConfig

#: The grid searched: around the defaults, one setting at a time and jointly.
GRID = {
    "window": (2000, 4000),
    "clip": (2.0, 3.0),
    "record_clip": (1.2, 1.3, 1.4),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    files = load_corpus(args.corpus)
    standard = load_profiles(args.corpus / "config" / "profiles.json")["standard"]
    halves = (files[0::2], files[1::2])
    started = time.perf_counter()
    results = []
    for values in itertools.product(*GRID.values()):
        settings = dict(zip(GRID, values, strict=True))
        scores = {item.name: _scores(item, settings) for item in files}
        per_half = [
            best_threshold(
                [f.scorer for f in half], [scores[f.name] for f in half], standard
            ).score
            for half in halves
        ]
        results.append((settings, per_half))
        print(
            f"{settings} halves {per_half[0]:.1f} / {per_half[1]:.1f}", file=sys.stderr
        )
    for chosen_on, scored_on in ((0, 1), (1, 0)):
        settings, _ = max(results, key=lambda r: r[1][chosen_on])
        held_out = dict((str(s), r[scored_on]) for s, r in results)[str(settings)]
        best = max(r[1][scored_on] for r in results)
        print(
            f"chosen on half {'AB'[chosen_on]} {settings}: half {'AB'[scored_on]} "
            f"scores {held_out:.1f} (best setting there: {best:.1f})"
        )
    print(f"{len(results)} settings in {time.perf_counter() - started:.0f} s")
    return 0


def _scores(item: NabFile, settings: dict[str, float]) -> np.ndarray:
    config = EnsembleConfig(**settings)  # type: ignore[arg-type]
    return np.nan_to_num(
        Ensemble(config).detect(item.ts_us, item.values).score, nan=-np.inf
    )


if __name__ == "__main__":
    sys.exit(main())
