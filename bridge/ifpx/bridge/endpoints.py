"""Binding the bridge's sockets: ipc endpoints with permissions set before anyone can connect.

An ipc endpoint is a Unix socket file: whoever may write to it may command the
bridge. The directory we create for it is 0750 and the socket 0660, both owned
by root and by ``group`` when one is given, so exactly root and that group's
members (the workers' and operators' group) can connect.
"""

from __future__ import annotations

import grp
import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

DIR_MODE = 0o750
SOCKET_UMASK = 0o117  # sockets come out 0660


def ipc_path(endpoint: str) -> Path | None:
    """The socket file of an ``ipc://`` endpoint (None for other transports)."""
    return Path(endpoint[len("ipc://") :]) if endpoint.startswith("ipc://") else None


def group_id(name: str | None) -> int:
    """The gid of ``name`` (-1, meaning unchanged, for None)."""
    if name is None:
        return -1
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValueError(f"no group {name!r}") from None


def prepare_dir(path: Path, group: str | None = None) -> None:
    """Make the directory of the ipc socket ``path`` (0750, and ``group``'s) if it is missing."""
    gid = group_id(group)
    directory = path.parent
    if not directory.exists():
        directory.mkdir(parents=True, mode=DIR_MODE)
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    if gid != -1:
        os.chown(directory, -1, gid)


def bind(sock: zmq.Socket[bytes], endpoint: str, group: str | None = None) -> None:
    """Bind ``sock``; for ipc, make the directory and socket file private first."""
    path = ipc_path(endpoint)
    if path is None:
        sock.bind(endpoint)
        return
    prepare_dir(path, group)
    gid = group_id(group)
    old = os.umask(SOCKET_UMASK)
    try:
        sock.bind(endpoint)
    finally:
        os.umask(old)
    if gid != -1:
        os.chown(path, -1, gid)


class Curve:
    """The bridge's CURVE key pair and the ZAP handler that admits listed client keys."""

    def __init__(
        self, ctx: zmq.Context[zmq.Socket[bytes]], secret_file: str, clients_dir: str
    ) -> None:
        public, secret = zmq.auth.load_certificate(secret_file)
        if secret is None:
            raise ValueError(f"{secret_file} holds no secret key (use the .key_secret file)")
        if not Path(clients_dir).is_dir():
            raise ValueError(f"{clients_dir} is not a directory of client public keys")
        self.public, self.secret = public, secret
        # pyzmq's ZAP handler runs in a thread of its own; it only answers handshakes.
        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=clients_dir)

    def serve(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE server (before it binds)."""
        sock.curve_server = True
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret

    def stop(self) -> None:
        """Stop the ZAP handler."""
        self._auth.stop()


def start_curve(
    ctx: zmq.Context[zmq.Socket[bytes]], secret_file: str | None, clients_dir: str | None
) -> Curve | None:
    """CURVE when both the key and the client directory are given; ValueError for only one."""
    if secret_file is None and clients_dir is None:
        return None
    if secret_file is None or clients_dir is None:
        raise ValueError("CURVE needs both --curve-secret and --curve-clients")
    return Curve(ctx, secret_file, clients_dir)
