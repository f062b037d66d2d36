"""Benchmarks of issue 8 (``make bench``): not part of the test suite, never imported by the project."""
