"""Files on disk are the truth, SQLite is the index: atomic placement of files (``files``), safe path components
(``paths``), the SQLite base (``db``), the index and its writer thread (``index``, ``indexer``) and the data_dir
lock (``lock``)."""
