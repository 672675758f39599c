"""Benchmarks of the back-pain CDS service, measured against a floor in the same run.

``python -m bench`` (``make bench``) starts everything itself on loopback and writes
``bench/results/latest.json`` and ``latest.md``. See ``bench/README.md``.
"""
