"""The aiohttp side: routing, WebSocket upgrades, the socket registry, health and metrics."""
