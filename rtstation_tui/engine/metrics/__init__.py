"""Plan metrics: plan facts, structure volumes, dose statistics and DVHs, computed off the receive path."""
