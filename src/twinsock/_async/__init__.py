"""The async shell: waits on the asyncio event loop (default loop or uvloop)."""
