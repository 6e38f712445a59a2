"""Benchmarks: backend rows (``backends``), the harness on sim and the
checker (``checker``), and the whole ``dst bench`` suite (``suite``)."""
