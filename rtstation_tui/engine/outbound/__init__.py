"""Everything that leaves the station or removes data: the send queue, per-node senders, the SCU, the rules that
queue sends, and retention (what may be deleted once every node has it)."""
