"""Benchmarks of the service: durable append throughput and chat round-trip latency."""

from __future__ import annotations
