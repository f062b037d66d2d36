"""Derived objects made from what the station holds: RTSTRUCT contours rasterized onto their images (overlay series,
DICOM SEG) and Enhanced multi-frame images split into classic single-frame ones.

Why a package of plain functions (datasets in, new datasets out): the CLI calls them today, and an engine transform
([ACTIONS], ``engine/transforms``) can wrap them later without this package knowing about rules or the network.
Nothing here writes files; `sources.py` reads the store through its index.
"""
