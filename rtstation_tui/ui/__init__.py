"""The operator console (Textual). Talks to the engine only through engine.station.Station and its events."""
