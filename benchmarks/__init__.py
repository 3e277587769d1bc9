"""Benchmarks for multiviz: our way versus the reference way, measured in the same run.

Not part of the installed package.  Run from the repository root with ``python -m benchmarks``;
see ``benchmarks/README.md`` and the generated ``docs/benchmarks.md``.  The harness lives in
:mod:`benchmarks.harness`; each ``benchmarks/bench_*.py`` module registers benchmarks with
:func:`benchmarks.harness.benchmark`.
"""
