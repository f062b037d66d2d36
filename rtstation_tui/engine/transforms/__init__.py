"""Transforms applied to copies of stored objects on their way out (anonymize now; machine maps, tag edits later).

The stored originals never change: a transform receives datasets, works on deep copies and returns new ones.
"""
