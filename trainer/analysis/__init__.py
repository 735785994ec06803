"""The analysis of finished runs: their comparison, its report, and the findings built on it.

``runs`` loads what ``train.py`` wrote, ``comparison`` ranks and judges the variants with
``stats``, ``markdown``, ``tables``, ``plots`` and ``variant_curves`` write the report that
``report`` assembles (and ``callback`` writes when a multirun ends), and ``findings`` checks claims
from the literature against such reports. Nothing here imports Lightning: a report is rebuilt
from the records on disk alone.
"""
