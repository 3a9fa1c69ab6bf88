"""CURVE keys for tcp endpoints: what a client needs to talk to a bridge that requires them.

Key files are ZeroMQ certificates as ``ifpx keygen`` (``zmq.auth.create_certificates``)
writes them: ``NAME.key`` holds the public key, ``NAME.key_secret`` both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth


@dataclass(frozen=True)
class CurveClient:
    """The bridge's public key and this client's key pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def load(cls, server_key: str | Path, cert: str | Path) -> CurveClient:
        """From the bridge's public certificate and this client's secret certificate."""
        server_public, _ = zmq.auth.load_certificate(str(server_key))
        public, secret = zmq.auth.load_certificate(str(cert))
        if secret is None:
            raise ValueError(f"{cert} holds no secret key (use the .key_secret file)")
        return cls(server_public, public, secret)

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE client of the bridge (before it connects)."""
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


def keygen(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (0600) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(out), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)
