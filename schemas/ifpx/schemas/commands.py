"""Commands (REQ -> REP) and their replies.

A request is a flat map: ``{"v": 1, "id": 7, "cmd": "bind", "port_id": 0,
"proxy": "tap0"}``. A reply echoes ``id`` and is either ``{"ok": true,
"result": {"type": <cmd>, ...}}`` or ``{"ok": false, "error": {"code": ...,
"message": ...}}``. Exactly one reply answers each request, whatever it held.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, get_args

from pydantic import Field, TypeAdapter

from .events import WireModel
from .state import Binding, SnapshotState
from .topics import Topic
from .types import U64, IfIndex, IfName, Mac, PortId
from .version import PROTOCOL_VERSION

RequestId = Annotated[int, Field(ge=0, le=2**63 - 1)]


class ErrorCode(StrEnum):
    """Stable error codes; clients branch on these, never on the message."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_COMMAND = "unknown_command"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    NO_SUCH_PROXY = "no_such_proxy"
    NOT_BOUND = "not_bound"
    ALREADY_EXISTS = "already_exists"
    INVALID_VALUE = "invalid_value"
    KERNEL_ERROR = "kernel_error"
    JOURNAL_GAP = "journal_gap"
    NOT_SUPPORTED = "not_supported"
    PERMISSION_DENIED = "permission_denied"
    STATE_NOT_SAVED = "state_not_saved"
    """The bridge could not write its state file; nothing was changed."""
    BUSY = "busy"
    """Asked too soon after the last costly build of the same kind (a snapshot): ask
    again later (the message says when)."""
    INTERNAL = "internal"


class _Command(WireModel):
    v: int = PROTOCOL_VERSION
    id: RequestId = 0


ProxyRef = Annotated[
    IfName | IfIndex, Field(description="proxy interface name, or its ifindex in the bridge netns")
]


class Hello(_Command):
    """Version and capability negotiation."""

    cmd: Literal["hello"] = "hello"
    client: Annotated[str, Field(max_length=64)] = ""
    versions: Annotated[list[int], Field(min_length=1, max_length=16)] = Field(
        default_factory=lambda: [PROTOCOL_VERSION]
    )


class Bind(_Command):
    """Bind a DPDK port to a proxy. Idempotent; acknowledged once persisted."""

    cmd: Literal["bind"] = "bind"
    port_id: PortId
    proxy: ProxyRef
    exclusive: bool = False
    """Refuse (``already_exists``) when the port is bound to another proxy that exists,
    instead of moving it: what an application that owns only its own bindings asks
    (minor 5)."""


class Unbind(_Command):
    """Unbind a port (from ``proxy`` only, when given). Idempotent."""

    cmd: Literal["unbind"] = "unbind"
    port_id: PortId
    proxy: ProxyRef | None = None


class CreateProxy(_Command):
    """Create a persistent multi_queue tap usable by DPDK's net_tap (``iface=NAME``)."""

    cmd: Literal["create_proxy"] = "create_proxy"
    name: IfName
    mac: Mac | None = None
    mtu: Annotated[int, Field(ge=68, le=65535)] | None = None


class DestroyProxy(_Command):
    """Remove a proxy interface and every binding to it."""

    cmd: Literal["destroy_proxy"] = "destroy_proxy"
    name: IfName
    force: bool = Field(
        default=False, description="remove it even if ifpx did not make it (net_tap's, or by hand)"
    )


class ListBindings(_Command):
    """Every binding, active or gone."""

    cmd: Literal["list_bindings"] = "list_bindings"


class ProxyOfPort(_Command):
    """The proxy a port is bound to."""

    cmd: Literal["proxy_of_port"] = "proxy_of_port"
    port_id: PortId


class PortsOfProxy(_Command):
    """The ports bound to a proxy."""

    cmd: Literal["ports_of_proxy"] = "ports_of_proxy"
    proxy: ProxyRef


class ProxyInfo(_Command):
    """A proxy's current configuration as the bridge mirrors it."""

    cmd: Literal["proxy_info"] = "proxy_info"
    proxy: ProxyRef


class EventsAvailable(_Command):
    """Which event kinds this bridge delivers on this platform."""

    cmd: Literal["events_available"] = "events_available"


class Snapshot(_Command):
    """The whole published state and the sequence numbers it is consistent at.

    ``topics``: those the requester follows. The bridge publishes a route form only
    while someone subscribes to its topic, and a subscription may reach it after this
    request; naming the topics here keeps them published meanwhile. None: ``route``.
    """

    cmd: Literal["snapshot"] = "snapshot"
    topics: Annotated[list[Topic], Field(max_length=16)] | None = None


class Status(_Command):
    """Epoch, sequence, counters, uptime."""

    cmd: Literal["status"] = "status"


class Replay(_Command):
    """Messages after ``from_seq`` on ``topics`` from the bridge's bounded journal."""

    cmd: Literal["replay"] = "replay"
    epoch: U64
    from_seq: U64
    topics: Annotated[list[str], Field(max_length=16)] | None = None


WorkerName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[!-~]+$",
        description="how a worker names itself: printable ASCII, no spaces (default host:pid)",
    ),
]


PrintableText = Annotated[
    str,
    Field(
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="free text without control characters (it reaches terminals)",
    ),
]


class Report(_Command):
    """A worker's applied position: every event up to ``seq`` has been through its callbacks.

    Sent by a subscriber over its own control connection, at most once an
    ``interval`` and once when it goes idle after a burst; never per event. A
    name belongs to the subscriber (``instance``) that first reported it until
    that one is gone. Taken on a read-only endpoint too (protocol minor 4).
    """

    cmd: Literal["report"] = "report"
    worker: WorkerName
    instance: Annotated[int, Field(ge=1, le=2**63 - 1)] = Field(
        description="random, chosen once per subscriber: tells a restart from the same worker"
    )
    host: PrintableText = ""
    pid: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    client: PrintableText = ""
    epoch: U64
    seq: U64 = Field(description="the last sequence number whose events were all applied")
    synced: bool
    repairing: bool = False
    topics: Annotated[list[Topic], Field(max_length=16)] = Field(default_factory=list)
    interval: Annotated[float, Field(ge=0.05, le=60.0)] = Field(
        default=1.0, description="the most seconds until this worker's next report"
    )
    counters: Annotated[dict[Annotated[str, Field(max_length=32)], U64], Field(max_length=16)] = (
        Field(default_factory=dict)
    )
    leaving: bool = False
    """The subscriber's last report: it is closing, and the worker is gone at once
    (minor 5; otherwise a silent worker whose process lives is ``stalled``, waited for)."""


class ListWorkers(_Command):
    """Every worker that reports to this bridge, its position, lag and state."""

    cmd: Literal["list_workers"] = "list_workers"


class WaitApplied(_Command):
    """Whether the workers have applied everything up to ``seq`` yet (never blocks: poll it)."""

    cmd: Literal["wait_applied"] = "wait_applied"
    seq: U64 | None = Field(default=None, description="None: the bridge's sequence number now")
    epoch: U64 | None = Field(
        default=None, description="the epoch ``seq`` belongs to; refused once it is over"
    )
    workers: Annotated[list[WorkerName], Field(max_length=256)] | None = Field(
        default=None, description="None: every worker not gone"
    )


Command = Annotated[
    Hello
    | Bind
    | Unbind
    | CreateProxy
    | DestroyProxy
    | ListBindings
    | ProxyOfPort
    | PortsOfProxy
    | ProxyInfo
    | EventsAvailable
    | Snapshot
    | Status
    | Replay
    | Report
    | ListWorkers
    | WaitApplied,
    Field(discriminator="cmd"),
]
"""Any command; validate with :data:`COMMAND_ADAPTER`."""

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)

COMMAND_TYPES: dict[str, type[WireModel]] = {
    cls.model_fields["cmd"].default: cls for cls in get_args(get_args(Command)[0])
}
"""Every command, by name."""


# ---- results -----------------------------------------------------------------


class HelloResult(WireModel):
    """The agreed version and what the peer offers."""

    type: Literal["hello"] = "hello"
    version: int
    epoch: U64
    server: Annotated[str, Field(max_length=64)]
    capabilities: list[str] = Field(default_factory=list)
    minor: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0, description="the additions within `version` the peer speaks"
    )


class BindResult(WireModel):
    """The binding as it now stands; ``changed`` is false for a repeated bind."""

    type: Literal["bind"] = "bind"
    binding: Binding
    changed: bool
    moved_from: IfName | None = Field(
        default=None, description="the proxy the port was bound to before this bind moved it"
    )


class UnbindResult(WireModel):
    """The bindings removed (empty for a repeated unbind)."""

    type: Literal["unbind"] = "unbind"
    removed: list[Binding] = Field(default_factory=list)


class CreateProxyResult(WireModel):
    """The proxy made (or found, if it already was a tap of that name)."""

    type: Literal["create_proxy"] = "create_proxy"
    name: IfName
    ifindex: IfIndex
    created: bool


class DestroyProxyResult(WireModel):
    """What destroying the proxy removed."""

    type: Literal["destroy_proxy"] = "destroy_proxy"
    name: IfName
    removed_bindings: list[Binding] = Field(default_factory=list)


class ListBindingsResult(WireModel):
    """Every binding."""

    type: Literal["list_bindings"] = "list_bindings"
    bindings: list[Binding] = Field(default_factory=list)


class ProxyOfPortResult(WireModel):
    """The binding of one port."""

    type: Literal["proxy_of_port"] = "proxy_of_port"
    binding: Binding


class PortsOfProxyResult(WireModel):
    """Ports bound to a proxy."""

    type: Literal["ports_of_proxy"] = "ports_of_proxy"
    proxy: IfName
    ifindex: IfIndex | None
    port_ids: list[PortId] = Field(default_factory=list)


class ProxyInfoResult(WireModel):
    """A proxy interface's mirrored configuration."""

    type: Literal["proxy_info"] = "proxy_info"
    name: IfName
    ifindex: IfIndex
    mac: Mac | None = None
    mtu: int = 0
    up: bool = False
    carrier: bool = False
    addrs: list[str] = Field(default_factory=list)
    port_ids: list[PortId] = Field(default_factory=list)


class EventsAvailableResult(WireModel):
    """Event kinds delivered by this bridge."""

    type: Literal["events_available"] = "events_available"
    kinds: list[str]


class SnapshotResult(WireModel):
    """State consistent with ``seq``; ``topic_seqs`` gives each topic's ``tseq`` then."""

    type: Literal["snapshot"] = "snapshot"
    epoch: U64
    seq: U64
    topic_seqs: dict[str, U64]
    cfg_done: bool
    state: SnapshotState


class StatusResult(WireModel):
    """Health and counters."""

    type: Literal["status"] = "status"
    epoch: U64
    seq: U64
    uptime: float
    netns: str | None = None
    bindings: int
    counters: dict[str, int] = Field(default_factory=dict)


class ReplayResult(WireModel):
    """Journalled messages after the requested sequence, in order.

    Each item is a published message's payload (its second frame), byte for
    byte as it was published: decode it as any message.
    """

    type: Literal["replay"] = "replay"
    epoch: U64
    messages: list[bytes] = Field(default_factory=list)


WorkerState = Literal[
    "syncing", "current", "repairing", "lagging", "stalled", "gone", "unknown", "refused"
]
"""``unknown``: named in ``wait_applied`` but never reported; ``refused``: its reports
are being refused (the name held by another process, the table full): it may be the
real worker, so ``wait_applied`` waits for it (protocol minor 4)."""


class WorkerInfo(WireModel):
    """One worker as the bridge sees it from its reports."""

    name: WorkerName
    state: WorkerState
    host: PrintableText = ""
    pid: int = Field(
        default=0, description="the reporter's pid as the kernel gave it (ipc), or as it said"
    )
    client: PrintableText = ""
    epoch: U64 = 0
    applied_seq: U64 = 0
    lag_seq: U64 = Field(default=0, description="sequence numbers on its topics not yet applied")
    lag_seconds: float = Field(default=0.0, description="age of the oldest of those")
    last_report: float = Field(default=0.0, description="seconds since its last report")
    reporting_for: float = Field(default=0.0, description="seconds since its first report")
    restarts: int = Field(default=0, description="times another instance took the name over")
    topics: list[Topic] = Field(default_factory=list)
    counters: dict[str, U64] = Field(default_factory=dict)


class ReportResult(WireModel):
    """A report taken; the bridge's position then."""

    type: Literal["report"] = "report"
    epoch: U64
    seq: U64


class ListWorkersResult(WireModel):
    """Every worker known, by name."""

    type: Literal["list_workers"] = "list_workers"
    epoch: U64
    seq: U64
    workers: list[WorkerInfo] = Field(default_factory=list)


class WaitAppliedResult(WireModel):
    """``done`` once every worker waited for has applied ``seq``; else who is still short."""

    type: Literal["wait_applied"] = "wait_applied"
    done: bool
    epoch: U64
    seq: U64 = Field(description="the sequence number waited for (ask again with it)")
    workers: list[WorkerName] = Field(default_factory=list, description="the workers waited for")
    waiting: list[WorkerInfo] = Field(default_factory=list, description="those not there yet")


Result = Annotated[
    HelloResult
    | BindResult
    | UnbindResult
    | CreateProxyResult
    | DestroyProxyResult
    | ListBindingsResult
    | ProxyOfPortResult
    | PortsOfProxyResult
    | ProxyInfoResult
    | EventsAvailableResult
    | SnapshotResult
    | StatusResult
    | ReplayResult
    | ReportResult
    | ListWorkersResult
    | WaitAppliedResult,
    Field(discriminator="type"),
]
"""Any command result."""


class ErrorInfo(WireModel):
    """A typed error: a stable ``code`` and a message for humans."""

    code: Annotated[ErrorCode, Field(strict=False)]  # arrives as its string value
    message: Annotated[str, Field(max_length=4096)]


class OkReply(WireModel):
    """A successful reply."""

    v: int = PROTOCOL_VERSION
    id: RequestId = 0
    ok: Literal[True] = True
    result: Result


class ErrorReply(WireModel):
    """A failed reply."""

    v: int = PROTOCOL_VERSION
    id: RequestId = 0
    ok: Literal[False] = False
    error: ErrorInfo


Reply = Annotated[OkReply | ErrorReply, Field(discriminator="ok")]
"""Any reply."""

REPLY_ADAPTER: TypeAdapter[Reply] = TypeAdapter(Reply)
