"""Which route forms the bridge builds: XPUB subscriptions and snapshot leases (pure)."""

from __future__ import annotations

from ifpx.bridge.forms import LEASE, RouteForms


def test_a_form_is_wanted_while_its_topic_is_subscribed() -> None:
    forms = RouteForms()
    assert not forms.wanted("route", 0.0) and not forms.wanted("fib", 0.0)
    forms.subscription(b"\x01fib")
    assert forms.wanted("fib", 0.0) and not forms.wanted("route", 0.0)
    forms.subscription(b"\x01route")
    forms.subscription(b"\x00fib")  # the last subscriber of fib left
    assert forms.wanted("route", 0.0) and not forms.wanted("fib", 0.0)


def test_an_empty_or_shorter_prefix_takes_every_topic_it_starts() -> None:
    forms = RouteForms()
    forms.subscription(b"\x01")  # a raw SUB socket subscribed to everything
    assert forms.wanted("route", 0.0) and forms.wanted("fib", 0.0)
    forms.subscription(b"\x00")
    forms.subscription(b"\x01ro")
    assert forms.wanted("route", 0.0) and not forms.wanted("fib", 0.0)


def test_frames_that_are_no_subscription_change_nothing() -> None:
    forms = RouteForms()
    for frame in (b"", b"\x02route", b"route"):
        forms.subscription(frame)
    assert not forms.wanted("route", 0.0)


def test_a_snapshot_keeps_its_topics_built_until_the_lease_ends() -> None:
    forms = RouteForms()
    forms.lease(["fib", "hb", "port"], now=100.0)
    assert forms.wanted("fib", 100.0 + LEASE - 0.1) and not forms.wanted("route", 100.0)
    assert not forms.wanted("fib", 100.0 + LEASE)
    forms.lease(None, now=200.0)  # an older client: it follows the flat form
    assert forms.wanted("route", 200.0) and not forms.wanted("fib", 200.0)


def test_prefixes_that_match_no_topic_are_not_kept() -> None:
    forms = RouteForms()
    for i in range(10_000):  # a client subscribing without end
        forms.subscription(b"\x01route" + str(i).encode())
        forms.subscription(b"\x01x" + str(i).encode())
    assert len(forms._prefixes) == 0 and not forms.wanted("route", 0.0)
    forms.subscription(b"\x01rou")
    assert forms._prefixes == {b"rou"} and forms.wanted("route", 0.0)
