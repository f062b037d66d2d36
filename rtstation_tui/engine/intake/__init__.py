"""Every way an instance comes in: the network receiver, ``rtstation import``, the watched folder, and the start-up
reconcile / ``index --rebuild`` that re-reads the files."""
