"""Trainer tests (issue 5)."""
