"""Findings: does a claim from the literature hold in our setting? One spec per claim
(``conf/findings/<name>.yaml``), its runs, its verdicts and its outcome.

A spec names the claim and its source (hand-written), the suite whose runs test it
(``conf/suite/<suite>.yaml``: data, model, budget, seeds, variants) with its names for the
suite's variants and any overrides it adds, the checks (a metric, its direction and, per variant,
the verdict against the baseline that the claim predicts: ``better`` / ``worse`` / ``tie``) and
an optional hand-written note (``spec``). Everything else is computed: the suite trains through
``train.py -m suite=<suite>`` in a subprocess (``runner``), the verdicts are the comparison's
paired, Holm-corrected ones and the outcome compares them with the expected directions
(``evaluation``); ``writing`` puts it all into ``results/``.
"""
