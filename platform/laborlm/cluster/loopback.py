"""Keeping every Ray process LaborLM starts on loopback, and finding out who listens where.

Why this is needed: asked for ``--node-ip-address 127.0.0.1`` (or ``ray.init(_node_ip_address="127.0.0.1")``),
Ray 2.60 replaces it with the machine's routable address (``services.resolve_ip_for_localhost``), and its
servers then listen on that address or on all interfaces: the GCS and raylets on ``*``, the dashboard agent on
``0.0.0.0``, the runtime-env agent and the Ray Client server (which runs arbitrary code) on the machine's IP.
Ray keeps 127.0.0.1 only where it believes multi-node clusters are off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
read at import); then the node IP is loopback and every server binds 127.0.0.1. That variable is inherited by
everything the node starts (raylets, agents, workers, job drivers), so their own address resolution agrees.

It also makes ``ray start --address`` refuse to add a node, so extra nodes of ``laborlm cluster up`` start
through :func:`main` (``python -m laborlm.cluster.loopback start --address ...``): Ray's own CLI, in a process
that allows joining and keeps a loopback address as given.

The socket helpers (:func:`listening_sockets`, :func:`port_owner`, :func:`check_ports_free`) serve the
readiness checks of ``cluster up`` and the tests that scan a process tree for non-loopback listeners.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from laborlm.errors import LaborLMError

logger = logging.getLogger(__name__)

LOOPBACK_HOST = "127.0.0.1"
# Ray's switch for "no multi-node clusters": with it off, Ray keeps loopback node addresses.
RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8, ``::1`` and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def address_host(address: str) -> str:
    """The host of a Ray address: ``host:port``, ``ray://host:port`` or ``http://host:port``."""
    return urlsplit(address if "://" in address else f"//{address}").hostname or ""


def pin_ray_to_loopback() -> None:
    """Make Ray, in this process and every process it starts, keep 127.0.0.1 as the node address.

    Works before or after ``import ray``: the environment variable reaches child processes, the module
    constant covers a Ray already imported here.
    """
    os.environ[RAY_CLUSTER_SWITCH] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


def local_ray_init_kwargs() -> dict[str, Any]:
    """Arguments for a ``ray.init`` that starts a loopback-only local Ray (call before it)."""
    pin_ray_to_loopback()
    return {"_node_ip_address": LOOPBACK_HOST}


def listening_sockets(pids: Iterable[int]) -> list[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of every TCP/UDP socket in LISTEN state held by ``pids``.

    UDP sockets have no LISTEN state: a bound, unconnected one (no remote address) counts as listening.
    """
    import psutil

    found = []
    for pid in sorted(set(pids)):
        try:
            process = psutil.Process(pid)
            name = process.name()
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        for c in connections:
            listening = c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr)
            if listening and c.laddr:
                found.append((pid, name, str(c.laddr.ip), int(c.laddr.port)))
    return found


def exposed_sockets(pids: Iterable[int]) -> list[tuple[int, str, str, int]]:
    """The listening sockets of ``pids`` that are reachable from other machines (not loopback)."""
    return [s for s in listening_sockets(pids) if not is_loopback(s[2])]


def port_owner(port: int) -> str | None:
    """``"<name> (pid N)"`` of the process listening on TCP ``port``, if this user can see it."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in connections:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                return f"{psutil.Process(c.pid).name()} (pid {c.pid})"
            except psutil.Error:
                return f"pid {c.pid}"
    return None


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (a listener on it, or on all interfaces, blocks it).

    ``SO_REUSEADDR`` as servers set it, so that connections in TIME_WAIT from an earlier run don't count.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """Raise one error naming every port (and, where visible, its owner) that something already listens on.

    Raises:
        LaborLMError: at least one port is taken.
    """
    taken = []
    for what, port in ports.items():
        if not port_free(host, port):
            owner = port_owner(port)
            taken.append(f"{what} port {port}" + (f" (held by {owner})" if owner else ""))
    if taken:
        raise LaborLMError(
            f"already in use on {host}: {', '.join(taken)}; another cluster or server is running "
            "there: stop it, or choose other ports"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """``ray <argv>`` (Ray's own CLI) for a node joining a loopback cluster.

    The cluster's processes carry ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (see the module docstring); with it,
    ``ray start --address`` refuses to join and Ray would replace 127.0.0.1 by the machine's address. Here
    joining is allowed and a loopback address is kept as given; children still inherit the variable.
    """
    from ray._private import ray_constants, services
    from ray.scripts.scripts import cli

    resolve = services.resolve_ip_for_localhost

    def keep_loopback(host: str) -> str:
        return host if is_loopback(host) else resolve(host)

    ray_constants.ENABLE_RAY_CLUSTER = True
    services.resolve_ip_for_localhost = keep_loopback
    cli.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="ray")


if __name__ == "__main__":
    main()
