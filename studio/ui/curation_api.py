"""Where the Curate page finds curation's functions (names agreed in the contract, homes may move)."""

from __future__ import annotations

from studio.ui.context import lib_first

DEDUP = (("curation.dedup", "dedup"),)
CLUSTERS = (("curation.dedup", "clusters"),)
SAVE_KEEPERS = (("curation.dedup", "save_keepers"),)
SCORE = (("curation.scoring", "score"),)
SCORERS = (("curation.scoring", "SCORERS"),)
HISTOGRAM = (("curation.scoring", "histogram"),)
SAVE_FILTERED = (("curation.browse", "filter_version"),)
COUNT = (("curation.browse", "count"),)
DIFF = (("curation.datasets", "diff"),)
DECONTAM = (("curation.decontam", "decontaminate"),)


def get(candidates):
    return lib_first(*candidates)
