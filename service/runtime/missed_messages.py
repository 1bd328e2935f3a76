"""The messages a resuming socket missed, read from the log as the frames that carry them.

Read by the output gate for a socket this node holds, and by the outbox delivery for a
socket it holds for an object running on another node: both send the same frames.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.api import published
from service.ports.event_log import PublishedLog


async def frames(
    log: PublishedLog,
    object_id: str,
    after: int,
    last_seq: int,
    tags: Sequence[str],
    limit: int,
) -> list[str | bytes]:
    """The frames of the messages published after ``after`` up to ``last_seq`` with no tag
    or one of ``tags``: at most ``limit`` (the newest, after a frame saying that the older
    ones were truncated, if there are more)."""
    # One more than the limit, to learn whether there are more.
    messages = await log.published_between(object_id, after, last_seq, tags, limit + 1)
    sent: list[str | bytes] = []
    if len(messages) > limit:
        # The oldest one read is the newest one not replayed.
        sent.append(published.truncated(messages[0].seq))
        messages = messages[1:]
    for message in messages:
        if message.binary is not None:
            sent.append(published.binary_frame(message.seq, message.binary))
        else:
            assert message.data is not None
            sent.append(published.text_frame(message.seq, message.data))
    return sent
