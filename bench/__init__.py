"""Benchmarks of the orchestrator over its real stack; results are ratios against a floor from the same run.

``python -m bench.tool_latency`` is the entry point (see ``bench/README.md``). Nothing here is a test:
a benchmark reports numbers and never fails on a time.
"""
