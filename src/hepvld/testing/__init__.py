"""Test helpers shipped with hepvld: synthetic NanoAOD-like events with a known truth.

:mod:`~hepvld.testing.synthetic` builds toy events (``toy_events``) and writes them as
ROOT files (``write_root``) for tests and benchmarks; nothing in the library uses it.
"""
