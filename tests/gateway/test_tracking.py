from gateway.tracking import AwaitingReport, Tracker


def _record(refs: set[int]) -> AwaitingReport:
    return AwaitingReport(
        message_id=b"m" * 16,
        origin_nation="DE",
        origin_unit="de.bos.x",
        priority=1,
        adapter="a",
        issi="1001",
        references=refs,
        want_read=True,
        deadline=10.0,
    )


def test_repeated_report_settles_only_once() -> None:
    tracker = Tracker()
    tracker.add_awaiting(_record({5, 6}))
    assert tracker.settle_part(("a", "1001", 5)) is False
    assert tracker.settle_part(("a", "1001", 6)) is True
    assert tracker.settle_part(("a", "1001", 6)) is False  # a repeated report
    assert tracker.settle_part(("a", "1001", 9)) is False  # unknown


def test_deadlines_and_parked_reports() -> None:
    tracker = Tracker()
    record = _record({1})
    tracker.add_awaiting(record)
    assert tracker.next_deadline() == 10.0
    assert tracker.awaiting_count == 1
    assert tracker.expired(9.0) == []
    assert tracker.expired(10.0) == [record]
    assert tracker.next_deadline() is None
    tracker.park_report(("a", "1001", 3), 0x00, now=1.0)
    assert tracker.take_parked(("a", "1001", 3), now=100.0) is None  # too old
    tracker.park_report(("a", "1001", 3), 0x02, now=1.0)
    assert tracker.take_parked(("a", "1001", 3), now=2.0) == 0x02
    assert tracker.take_parked(("a", "1001", 3), now=2.0) is None
