"""Query/Retrieve: C-FIND queries and selective C-MOVE/C-GET retrieves from remote archives (``query``, ``scu``,
``retrieve``), and answering other nodes' C-FIND/C-MOVE/C-GET from the index and the store (``scp``).

A layer above ``intake`` and ``outbound``: retrieved objects take the one ``ingest()`` path (``RetrieveOrigin``),
and the SCU side reuses the sender's association helpers. The receiver never imports this package: the Station
hands it the SCP handlers (``scp.QRService``)."""
