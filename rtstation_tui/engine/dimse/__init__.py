"""The fence around pynetdicom's internals: the only package that touches its private names (event-driven
acceptor and requestor loops, C-STORE on the wire, the chunked-receive spool guard, the TLS server). Pinned to the
pynetdicom version in ``pyproject.toml``; see DEVELOPERS.md, "Upgrading pynetdicom"."""
