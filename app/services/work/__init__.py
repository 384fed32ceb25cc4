"""Doing the work: claims, completion, leases, briefs and synthesis."""
