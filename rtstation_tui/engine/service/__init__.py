"""The station's local control API ([ATTACH]): HTTP/JSON on a Unix socket, served by the process that owns the
engine, in the station's own asyncio loop (aiohttp). ``server`` binds and runs it, ``routes`` maps resources to the
engine, ``stream`` is the event stream, ``jsonable`` turns the engine's frozen dataclasses into JSON and back,
``client`` is what the CLI (and an attached console) use to talk to it."""
