"""The operator console (Textual). Talks to the engine only through ``engine.api.StationAPI`` and its events."""
