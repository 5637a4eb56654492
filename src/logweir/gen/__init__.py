"""A seeded generator of realistic web logs, with labelled incidents.

>>> from logweir.gen import generate, DEFAULT_INCIDENTS
>>> result = generate(200_000, "access.log", seed=7,
...                   incidents=DEFAULT_INCIDENTS)  # doctest: +SKIP
>>> [label.kind for label in result.incidents]  # doctest: +SKIP
['traffic_spike', 'error_rate', 'latency', 'scanner', 'traffic_drop']

``logweir gen`` is the command-line face of :func:`generate`.
"""

from logweir.gen.generator import (
    BLOCK_LINES,
    DEFAULT_DISORDER_SHARE,
    DEFAULT_MALFORMED_SHARE,
    DEFAULT_RATE_PER_S,
    DEFAULT_START,
    GenResult,
    generate,
    labels_path_for,
)
from logweir.gen.incidents import (
    DEFAULT_INCIDENTS,
    DEFAULT_MAGNITUDE,
    INCIDENT_KINDS,
    Incident,
    IncidentKind,
    IncidentLabel,
    parse_duration,
    parse_incident,
)
from logweir.gen.render import (
    COMBINED_DURATION_LOGFORMAT,
    FORMATS,
    FORMATS_WITH_DURATION,
    MALFORMED_KINDS,
)

__all__ = [
    "BLOCK_LINES",
    "COMBINED_DURATION_LOGFORMAT",
    "DEFAULT_DISORDER_SHARE",
    "DEFAULT_INCIDENTS",
    "DEFAULT_MAGNITUDE",
    "DEFAULT_MALFORMED_SHARE",
    "DEFAULT_RATE_PER_S",
    "DEFAULT_START",
    "FORMATS",
    "FORMATS_WITH_DURATION",
    "INCIDENT_KINDS",
    "MALFORMED_KINDS",
    "GenResult",
    "Incident",
    "IncidentKind",
    "IncidentLabel",
    "generate",
    "labels_path_for",
    "parse_duration",
    "parse_incident",
]
