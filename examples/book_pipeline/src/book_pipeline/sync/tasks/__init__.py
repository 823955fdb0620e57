"""Sync tasks: each has ``async def main(pipeline) -> Result``."""
