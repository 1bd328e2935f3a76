"""The mailbox queues each inbox row once, even when a read that began before the commit
consuming some rows returns them after that commit landed (reads overlap under load: every
wake of a busy object reads its inbox)."""

from __future__ import annotations

from service.api.limits import Limits
from service.ports.records import InboxItem
from service.runtime.delivery import Delivery
from service.runtime.mailbox import Mailbox


class _Runner:
    """What the mailbox asks of its activation; these tests never run a turn."""

    async def run_turn(self, delivery: Delivery) -> None:
        raise AssertionError("no turn runs here")

    def reset(self, reason: str) -> None:
        raise AssertionError(reason)

    def log_extra(self, action: str = "activation") -> dict[str, str]:
        return {"action": action}


def _rows(*ids: int) -> list[InboxItem]:
    return [InboxItem("o", "message", "s", {"text": f'"m{i}"', "attempts": 0}, id=i) for i in ids]


def _mailbox() -> Mailbox:
    return Mailbox(_Runner(), Limits(), max_attempts=3, inbox_attempts={})


def test_a_read_that_returns_after_its_rows_were_consumed_queues_none_of_them() -> None:
    mailbox = _mailbox()
    mailbox.reading_inbox()
    mailbox.queue_inbox(_rows(1, 2), first=False)
    mailbox.reading_inbox()  # a second read starts; rows 1 and 2 are still in the table
    ran = mailbox.take_all()
    assert [d.inbox_id for d in ran] == [1, 2]
    mailbox.consumed([1, 2])  # their turn's commit lands while the read is out
    mailbox.queue_inbox(_rows(1, 2, 3), first=False)
    assert [d.inbox_id for d in mailbox.take_all()] == [3]


def test_once_no_read_is_out_a_consumed_row_is_forgotten() -> None:
    mailbox = _mailbox()
    mailbox.reading_inbox()
    mailbox.queue_inbox(_rows(1), first=False)
    mailbox.take_all()
    mailbox.consumed([1])
    mailbox.reading_inbox()
    mailbox.inbox_read_failed()
    assert mailbox._consumed_meanwhile == set()
    assert mailbox._seen_inbox == set()
