"""Limits of the hibernation API and storage, with the reference (workerd) figures as defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Every limit users can hit; the service builds one from its settings."""

    max_tags: int = 10
    max_tag_bytes: int = 256
    max_websockets: int = 32768
    max_attachment_bytes: int = 16384
    max_auto_response_bytes: int = 2048
    max_key_bytes: int = 2048
    max_value_bytes: int = 131072
    max_keys_per_call: int = 128
    max_message_bytes: int = 1 << 20
    max_event_timeout_ms: int = 604_800_000
    max_close_reason_bytes: int = 123
    #: Most published messages a resuming socket is sent from the log; one that missed more
    #: gets the newest ones, after a frame saying that the others were truncated.
    max_resume_messages: int = 10_000
    block_concurrency_timeout: float = 30.0
    max_block_concurrency_depth: int = 64
