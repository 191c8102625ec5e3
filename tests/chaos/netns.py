"""A fleet of "hosts": network namespaces linked to the root namespace by veth pairs.

Host ``i`` is the namespace ``<prefix>h<i>`` with the address 10.251.<i>.2/24 on its end of
a veth pair whose root end is 10.251.<i>.1/24: only the suite's own addresses, on links it
made. Faults are iptables rules *inside* a host's namespace (its own tables; the root
namespace's firewall and routes are not touched): DROP for a cut link, the ``statistic``
match for random loss, ``REJECT --reject-with tcp-reset`` both ways for reset connections.
Latency is a delaying proxy in the root namespace (tests.chaos.proxy), since this kernel has
no ``netem``. ``close`` deletes the namespaces, which deletes their veth pairs.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import uuid
from dataclasses import dataclass

SUBNET = "10.251.{i}.0/24"


def available() -> str | None:
    """Why a fleet cannot be made here, or None."""
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make chaos installs iptables)"
    import os

    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def _run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    index: int
    ns: str
    root_link: str

    @property
    def root_ip(self) -> str:  # the root namespace's end: where the host finds the database
        return f"10.251.{self.index}.1"

    @property
    def ip(self) -> str:
        return f"10.251.{self.index}.2"

    def iptables(self, *rule: str) -> None:
        _run("ip", "netns", "exec", self.ns, "iptables", "-w", *rule)

    def cut(self) -> None:
        """Every packet to and from the root end dropped (a cable pulled)."""
        self.iptables("-I", "OUTPUT", "-d", self.root_ip, "-j", "DROP")
        self.iptables("-I", "INPUT", "-s", self.root_ip, "-j", "DROP")

    def loss(self, probability: float) -> None:
        """Each packet, each way, dropped with `probability`."""
        for chain, way in (("OUTPUT", "-d"), ("INPUT", "-s")):
            self.iptables("-I", chain, way, self.root_ip, "-m", "statistic", "--mode", "random",
                          "--probability", str(probability), "-j", "DROP")  # fmt: skip

    def resets(self, probability: float) -> None:
        """A TCP packet, either way, answered by a reset with `probability`: the connection
        breaks at both ends, wherever it was (in a transaction or not)."""
        for chain, way in (("OUTPUT", "-d"), ("INPUT", "-s")):
            self.iptables("-I", chain, "-p", "tcp", way, self.root_ip, "-m", "statistic",
                          "--mode", "random", "--probability", str(probability),
                          "-j", "REJECT", "--reject-with", "tcp-reset")  # fmt: skip

    def heal(self) -> None:
        self.iptables("-F", "INPUT")
        self.iptables("-F", "OUTPUT")


class Fleet:
    """``Fleet(n)``: hosts 1..n, made at once; ``close`` removes them."""

    def __init__(self, count: int) -> None:
        tag = uuid.uuid4().hex[:4]
        self.hosts: list[Host] = []
        taken = _addresses_in_use()
        try:
            for i in range(1, count + 1):
                net = ipaddress.ip_network(SUBNET.format(i=i))
                if any(addr in net for addr in taken):
                    raise RuntimeError(f"{net} is in use on this machine: pick another range")
                host = Host(i, f"jqc{tag}h{i}", f"jqc{tag}r{i}")
                peer = f"jqc{tag}p{i}"
                _run("ip", "netns", "add", host.ns)
                self.hosts.append(host)
                _run("ip", "link", "add", host.root_link, "type", "veth", "peer", "name", peer)
                _run("ip", "link", "set", peer, "netns", host.ns)
                _run("ip", "addr", "add", f"{host.root_ip}/24", "dev", host.root_link)
                _run("ip", "link", "set", host.root_link, "up")
                inside = ["ip", "netns", "exec", host.ns, "ip"]
                _run(*inside, "addr", "add", f"{host.ip}/24", "dev", peer)
                _run(*inside, "link", "set", peer, "up")
                _run(*inside, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", host.root_link], capture_output=True, check=False)
        self.hosts = []


def _addresses_in_use() -> list[ipaddress.IPv4Address]:
    out = _run("ip", "-4", "-o", "addr", "show")
    return [ipaddress.IPv4Interface(line.split()[3]).ip for line in out.splitlines()]
