"""Maintenance: the coordinator, cleanup scans, structure validation and progress documents."""
