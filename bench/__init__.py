"""Benchmarks: thumbsvc against plain Pillow, pyvips and thumbor (see docs/performance.md).

Run the entry points as modules from the repository root (``python -m bench.inprocess``,
``python -m bench.http``), never as scripts: ``bench/http.py`` would shadow the standard
library's ``http`` package if ``bench/`` were on ``sys.path``.
"""
