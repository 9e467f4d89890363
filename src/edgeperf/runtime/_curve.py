"""CURVE for workers bound beyond loopback: keys, the server side, the client side.

Key files are ZeroMQ certificates (``zmq.auth.create_certificates``): a
public ``NAME.key`` and a secret ``NAME.key_secret`` (which holds both keys).
A worker with ``curve_server_key`` (its secret certificate) and
``curve_clients`` (a folder of client ``.key`` files) runs ZeroMQ's
authenticator, so a peer whose key is not in the folder never gets a
message through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import _validation as v

__all__ = ["make_keypair", "load_keypair", "curve_server", "curve_client"]


def make_keypair(folder: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` into ``folder``;
    return their paths (public, secret)."""
    import zmq.auth

    v.name_string("make_keypair", "name", name)
    where = Path(folder)
    where.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(where, name)
    return Path(public), Path(secret)


def load_keypair(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a secret certificate, or from a file holding
    only the 40-character z85 secret key."""
    import zmq
    import zmq.auth

    file = v.path("load_keypair", "path", path)
    rule = "a readable CURVE secret key file (a .key_secret certificate or z85 text)"
    try:
        public, secret = zmq.auth.load_certificate(file)
    except (OSError, ValueError):
        public, secret = None, _raw_secret(file)
    if secret is None:
        raise v.fail("load_keypair", "path", rule, str(file))
    try:
        return public or zmq.curve_public(secret), secret
    except (zmq.ZMQError, ValueError):
        raise v.fail("load_keypair", "path", rule, str(file)) from None


def _raw_secret(file: Path) -> bytes | None:
    try:
        text = file.read_bytes().strip()
    except OSError:
        return None
    return text if len(text) == 40 else None


def curve_server(context: Any, socket: Any, secret_key_file: str | Path,
                 clients_folder: str | Path) -> Any:
    """Make ``socket`` (not yet bound) a CURVE server that admits only the
    public keys in ``clients_folder``; returns the started authenticator (stop it)."""
    from zmq.auth.thread import ThreadAuthenticator

    folder = Path(clients_folder)
    if not folder.is_dir():
        raise v.fail("curve_server", "clients_folder", "a folder of client public keys",
                     str(folder))
    public, secret = load_keypair(secret_key_file)
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(folder))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return auth


def curve_client(socket: Any, server_public: bytes | str, client_public: bytes | str,
                 client_secret: bytes | str) -> Any:
    """Set ``socket`` (before connect) to talk CURVE to a server with key ``server_public``."""
    socket.curve_serverkey = _key(server_public)
    socket.curve_publickey = _key(client_public)
    socket.curve_secretkey = _key(client_secret)
    return socket


def _key(key: bytes | str) -> bytes:
    return key.encode("ascii") if isinstance(key, str) else bytes(key)
