"""Detectors: closed windows in, alerts out.

Each detector (:mod:`.base`) watches one numeric series with one verb set,
``update`` / ``detect`` / ``state`` / ``from_state``. :mod:`.series` draws
the series from window rows, :mod:`.rules` holds the built-in web-traffic
rules, :mod:`.alerts` turns anomalous windows into incidents, and
:class:`AlertEngine` (:mod:`.engine`) ties them together for the pipeline.
"""

from logweir.detectors.average import (
    EWMA,
    EWMAConfig,
    MovingAverage,
    MovingAverageConfig,
)
from logweir.detectors.base import (
    DETECTORS,
    Detector,
    DetectorConfig,
    DeviationConfig,
    Score,
    Scores,
    build_detector,
    detector_from_state,
)
from logweir.detectors.change import RateOfChange, RateOfChangeConfig
from logweir.detectors.ensemble import Ensemble, EnsembleConfig
from logweir.detectors.seasonal import SeasonalBaseline, SeasonalConfig
from logweir.detectors.static import StaticConfig, StaticThreshold
from logweir.detectors.zscore import (
    RobustZScore,
    RobustZScoreConfig,
    ZScore,
    ZScoreConfig,
)

__all__ = [
    "DETECTORS",
    "EWMA",
    "Detector",
    "DetectorConfig",
    "DeviationConfig",
    "EWMAConfig",
    "Ensemble",
    "EnsembleConfig",
    "MovingAverage",
    "MovingAverageConfig",
    "RateOfChange",
    "RateOfChangeConfig",
    "RobustZScore",
    "RobustZScoreConfig",
    "Score",
    "Scores",
    "SeasonalBaseline",
    "SeasonalConfig",
    "StaticConfig",
    "StaticThreshold",
    "ZScore",
    "ZScoreConfig",
    "build_detector",
    "detector_from_state",
]
