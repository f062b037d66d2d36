"""The TOML configuration: frozen dataclasses (``model``), per-value checks, nodes, rules, allowlist, retry
schedules, what a reload may change live (``reload``) and comment-keeping edits of the file (``tomlfile``)."""
