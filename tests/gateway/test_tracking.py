from gateway.tracking import AwaitingReport, OriginRecord, Tracker


def _record(refs: set[int | bytes]) -> AwaitingReport:
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


def test_forgotten_deliveries_leave_no_deadline_and_reused_references_move() -> None:
    tracker = Tracker()
    first, second = _record({1, 2}), _record({2, 3})
    second.deadline = 20.0
    tracker.add_awaiting(first)
    tracker.add_awaiting(second)  # reference 2 reused: it now answers the second delivery
    assert tracker.match_report(("a", "1001", 2)) is second
    assert tracker.match_report(("a", "1001", 1)) is first
    tracker.forget(first)
    assert tracker.match_report(("a", "1001", 1)) is None
    assert tracker.match_report(("a", "1001", 2)) is second
    assert tracker.next_deadline() == 20.0
    assert tracker.expired(15.0) == []
    assert tracker.expired(20.0) == [second]
    assert tracker.awaiting_count == 0


def test_bounded_table_forgets_the_oldest_delivery() -> None:
    tracker = Tracker(max_entries=2)
    old, new = _record({1, 2}), _record({7})
    tracker.add_awaiting(old)
    tracker.add_awaiting(new)
    assert tracker.match_report(("a", "1001", 1)) is None
    assert tracker.match_report(("a", "1001", 7)) is new
    assert tracker.awaiting_count == 1
    assert tracker.take_evicted() == [old]  # its origin still needs a receipt
    assert tracker.take_evicted() == []
    assert tracker.expired(10.0) == [new]  # the forgotten one has no deadline left


def _origin(n: int) -> OriginRecord:
    return OriginRecord(
        message_id=n.to_bytes(16, "big"),
        adapter="a",
        source_issi="1001",
        protocol_id=None,
        message_reference=None,
        report_request=0,
        priority=1,
    )


def test_an_origin_ended_during_a_read_is_known_to_that_read_only() -> None:
    tracker = Tracker()
    for n in range(3):
        tracker.add_origin(_origin(n))
    tracker.end_origin(_origin(0).message_id)  # no read in progress: nothing to remember
    assert not tracker._ended
    first = tracker.begin_read()
    tracker.end_origin(_origin(1).message_id)
    second = tracker.begin_read()
    tracker.end_origin(_origin(2).message_id)
    assert _origin(1).message_id not in tracker.origins
    assert tracker.ended_since(_origin(1).message_id, first)
    assert not tracker.ended_since(_origin(1).message_id, second)  # ended before it began
    assert tracker.ended_since(_origin(2).message_id, second)
    assert not tracker.ended_since(_origin(0).message_id, first)
    tracker.end_read(first)
    assert list(tracker._ended) == [_origin(2).message_id]  # what the second read needs
    tracker.end_read(second)
    assert not tracker._ended  # bounded by the reads in progress, not by a count


def test_a_record_ended_stays_ended_for_reads_begun_before_its_drop_was_durable() -> None:
    tracker = Tracker()
    tracker.add_origin(_origin(5))
    ending = tracker.begin_read()
    tracker.end_origin(_origin(5).message_id)
    later = tracker.begin_read()  # began after the end, before the drop was durable
    assert tracker.ended(_origin(5).message_id)
    tracker.dropped([_origin(5).message_id])
    tracker.end_read(ending)
    assert tracker.ended(_origin(5).message_id)  # the later read may hold a stale row
    tracker.end_read(later)
    assert not tracker.ended(_origin(5).message_id)
    tracker.dropped([_origin(6).message_id])  # nothing in progress: nothing to remember
    assert not tracker._ended
