"""Run logweir's detectors over the NAB corpus and score them.

Usage, from the repository root::

    .venv/bin/python -m benchmarks.nab.run_nab [--corpus ../shared/corpus/nab]
        [--only ensemble,zscore] [--json results.json]

Every detector scores every file through its batch path
(:meth:`~logweir.detectors.base.Detector.detect`), from an empty history,
seeing each point only after the ones before it. A detector's anomaly
score per point is the magnitude of its score (for the ensemble, its
likelihood in [0, 1)); points it does not score count as no detection. The
scorer (:mod:`benchmarks.nab.scoring`) then finds, per profile, the
threshold that maximizes the normalized score over all files.

The corpus holds 43 of NAB's 58 files, so the published scoreboard
(``results/final_results.json``) is a reference point, not a like-for-like
comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from benchmarks.nab.scoring import (
    FileScorer,
    ProfileResult,
    best_threshold,
    load_profiles,
    rows_of_windows,
)

from logweir.detectors import build_detector
from logweir.detectors.base import FloatArray
from logweir.detectors.ensemble import likelihood

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "nab"
PUBLISHED = ("windowedGaussian", "earthgeckoSkyline", "numenta", "ARTime")


@dataclass(frozen=True)
class NabFile:
    name: str
    ts_us: np.ndarray
    values: FloatArray
    scorer: FileScorer

    @property
    def step_s(self) -> int:
        return int(np.median(np.diff(self.ts_us)) // 1_000_000)


def load_corpus(corpus: Path) -> list[NabFile]:
    """Every labelled file of the corpus, with its scorer."""
    windows = json.loads((corpus / "labels" / "combined_windows.json").read_text())
    files = []
    for name in sorted(windows):
        frame = pl.read_csv(corpus / "data" / name)
        stamps = frame.get_column("timestamp").str.to_datetime(
            "%Y-%m-%d %H:%M:%S", time_unit="us", time_zone="UTC"
        )
        values = frame.get_column("value").cast(pl.Float64).to_numpy()
        naive = stamps.dt.replace_time_zone(None).to_numpy()
        scorer = FileScorer(name, len(values), rows_of_windows(naive, windows[name]))
        ts_us = stamps.dt.epoch("us").to_numpy().astype(np.int64)
        files.append(NabFile(name, ts_us, values, scorer))
    return files


#: A detector under test: a label, and how it scores one file.
Scorer = Callable[[NabFile], FloatArray]


def _magnitude(name: str, **config: object) -> Scorer:
    def run(item: NabFile) -> FloatArray:
        detector = build_detector(name, dict(config))
        result: FloatArray = np.abs(detector.detect(item.ts_us, item.values).score)
        return result

    return run


def _seasonal(item: NabFile) -> FloatArray:
    step = item.step_s if 86_400 % item.step_s == 0 else 300
    detector = build_detector("seasonal", {"bucket_s": step})
    result: FloatArray = np.abs(detector.detect(item.ts_us, item.values).score)
    return result


def _static(item: NabFile) -> FloatArray:
    """Bounds set to the range seen during the probationary period.

    NAB lets a detector learn from the probationary period; a static
    threshold has nothing else to go on.
    """
    seen = item.values[: item.scorer.probation]
    low, high = float(seen.min()), float(seen.max())
    span = max(high - low, 1e-9)
    config = {"lower": low, "upper": high} if high > low else {"upper": high}
    detector = build_detector("static", config)
    result: FloatArray = np.abs(detector.detect(item.ts_us, item.values).score) / span
    return result


def _ensemble(item: NabFile) -> FloatArray:
    """The ensemble's anomaly likelihood in [0, 1) (same order as its score)."""
    scores = build_detector("ensemble", {}).detect(item.ts_us, item.values).score
    return likelihood(scores)


def _random(item: NabFile) -> FloatArray:
    """Seeded uniform scores: the floor any detector should clear."""
    seed = sum(item.name.encode())
    result: FloatArray = np.random.default_rng(seed).random(item.values.size)
    return result


#: What is run, with the settings shown in BENCHMARKS.md.
SUITE: dict[str, tuple[str, Scorer]] = {
    "random": ("uniform scores, seeded per file", _random),
    "static": ("bounds = range of the probationary period", _static),
    "zscore": (
        "window 1000, min_history 100",
        _magnitude("zscore", window=1000, min_history=100),
    ),
    "robust_zscore": (
        "window 1000, min_history 100",
        _magnitude("robust_zscore", window=1000, min_history=100),
    ),
    "moving_average": (
        "window 100 (relative deviation)",
        _magnitude("moving_average", window=100, min_history=20),
    ),
    "ewma": ("alpha 0.01", _magnitude("ewma", alpha=0.01, min_history=100)),
    "seasonal": ("auto period, bucket = series step", _seasonal),
    "rate_of_change": ("lag 1, log2 ratio", _magnitude("rate_of_change")),
    "ensemble": ("defaults (tuned on this corpus)", _ensemble),
}


def evaluate(
    files: list[NabFile], scorer: Scorer, corpus: Path
) -> tuple[dict[str, ProfileResult], float]:
    """Every profile's best result for one detector, and the seconds it took."""
    started = time.perf_counter()
    scores = [np.nan_to_num(scorer(item), nan=-np.inf) for item in files]
    elapsed = time.perf_counter() - started
    profiles = load_profiles(corpus / "config" / "profiles.json")
    results = {
        name: best_threshold([f.scorer for f in files], scores, profile)
        for name, profile in profiles.items()
    }
    return results, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--only", help="comma-separated detector labels")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    files = load_corpus(args.corpus)
    points = sum(f.values.size for f in files)
    print(f"{len(files)} files, {points} points", file=sys.stderr)
    wanted = args.only.split(",") if args.only else list(SUITE)
    rows = []
    print("| detector | settings | standard | low FP | low FN | TP/FP/FN (std) | s |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    for label in wanted:
        settings, scorer = SUITE[label]
        results, elapsed = evaluate(files, scorer, args.corpus)
        std = results["standard"]
        counts = f"{std.counts.tp}/{std.counts.fp}/{std.counts.fn}"
        print(
            f"| {label} | {settings} | {std.score:.1f} "
            f"| {results['reward_low_FP_rate'].score:.1f} "
            f"| {results['reward_low_FN_rate'].score:.1f} | {counts} | {elapsed:.1f} |",
            flush=True,
        )
        rows.append(
            {
                "detector": label,
                "settings": settings,
                "seconds": elapsed,
                **{
                    name: {"score": r.score, "threshold": r.threshold}
                    for name, r in results.items()
                },
            }
        )
    published = json.loads((args.corpus / "results" / "final_results.json").read_text())
    for name in PUBLISHED:
        entry = published[name]
        print(
            f"| {name} (published, 58 files) | | {entry['standard']:.1f} "
            f"| {entry['reward_low_FP_rate']:.1f} "
            f"| {entry['reward_low_FN_rate']:.1f} | | |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
