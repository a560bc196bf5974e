"""Telling systemd about a service's state (``sd_notify``), without libsystemd.

A unit with ``Type=notify`` starts a service with ``$NOTIFY_SOCKET`` set to a datagram
socket; the service sends newline-separated ``KEY=VALUE`` assignments to it: ``READY=1``
once it is up (``systemctl start`` returns then), ``STATUS=...`` for ``systemctl
status``, ``STOPPING=1`` when it begins to stop. A path starting with ``@`` is in the
abstract namespace. Without ``$NOTIFY_SOCKET`` (not under systemd) ``notify`` does
nothing; it never raises, because a service must not fail for lack of a listener.
"""

from __future__ import annotations

import os
import socket


def notify(**fields: str | int) -> bool:
    """Send ``KEY=VALUE`` lines (``notify(READY=1, STATUS="mounted")``); True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError:
        return False
    return True
