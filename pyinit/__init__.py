"""pyinit: a small PID 1 for containers."""

__version__ = "0.1.0"
