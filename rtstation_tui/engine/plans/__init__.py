"""Plans as the operator sees them: bundles by reference chain (``bundle``), readiness (waiting → ready /
ready-incomplete, ``readiness``) and the listings the CLI reads (``listing``)."""
