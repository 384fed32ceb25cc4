"""End-to-end tests use the ``server`` and ``era`` fixtures of tests/conftest.py (shared with tests/tools)."""
