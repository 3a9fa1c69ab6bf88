"""The subscriber's queue of events waiting for the application (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ifpx.schemas import events as ev
from ifpx.subscribers.eventqueue import EventQueue as _EventQueue


def _events(start: int, count: int) -> list[ev.EventBase]:
    return [ev.ResyncEnd(reason="r", changes=start + i) for i in range(count)]


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), max_size=8),
    st.lists(st.integers(1, 7), min_size=1, max_size=20),
)
def test_take_returns_everything_in_order_in_any_slices(
    segments: list[tuple[bool, int]], sizes: list[int]
) -> None:
    # Ready events (append/extend) and lazily produced runs (add_lazy), interleaved.
    q = _EventQueue()
    expected: list[ev.EventBase] = []
    for lazy, count in segments:
        batch = _events(len(expected), count)
        expected.extend(batch)
        if lazy:
            q.add_lazy(iter(batch))
        elif count == 1:
            q.append(batch[0])
        else:
            q.extend(batch)
    got: list[ev.EventBase] = []
    for n in sizes * (len(expected) + 1):
        chunk = q.take(n)
        assert len(chunk) <= n
        if len(chunk) < n:
            assert len(got) + len(chunk) == len(expected), "short only when dry"
        got.extend(chunk)
    assert got == expected
    assert q.take(5) == []
