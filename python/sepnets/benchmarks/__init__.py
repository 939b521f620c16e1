"""Benchmarks: timings measured side by side, never imported by the rest of
the project (PyTorch, which one of them compares against, lives in its own
environment, .venv-bench)."""
