"""meshbed peer agent: a BitTorrent-compatible swarming engine (stdlib asyncio + prometheus_client)."""

__version__ = "0.1.0"
