"""A JetStream cluster of ``nats-server`` processes on one machine: each node's command line.

``syntx up --cluster 3`` and the tests start the same nodes from these arguments: every node has a
server name, the cluster's name, a route port and routes to the others, and a store directory of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CLUSTER_NAME = "syntx"
CLUSTER_READY_MARKER = b"metadata leader"  # logged by every node once the cluster has elected its leader


@dataclass(frozen=True)
class ClusterNode:
    name: str
    client_port: int
    route_port: int
    store_dir: Path


@dataclass(frozen=True)
class ClusterPlan:
    nodes: tuple[ClusterNode, ...]
    host: str = "127.0.0.1"

    @property
    def servers(self) -> list[str]:
        """Every node's client URL: what ``nats.servers`` holds for this cluster."""
        return [f"nats://{self.host}:{node.client_port}" for node in self.nodes]

    def route(self, node: ClusterNode) -> str:
        return f"nats://{self.host}:{node.route_port}"

    def cluster_arguments(self, node: ClusterNode) -> list[str]:
        """What makes one node a member (added to :func:`server_arguments`)."""
        others = [self.route(other) for other in self.nodes if other is not node]
        return ["--cluster_name", CLUSTER_NAME, "--cluster", self.route(node), "--routes", ",".join(others)]

    def arguments(self, node: ClusterNode) -> list[str]:
        single = server_arguments(self.host, node.client_port, node.store_dir, node.name)
        return [*single, *self.cluster_arguments(node)]


def server_arguments(host: str, port: int, store_dir: Path, name: str) -> list[str]:
    """One JetStream server: listen address, store directory and server name."""
    return ["-a", host, "-p", str(port), "-js", "-sd", str(store_dir), "-n", name]


def plan_cluster(
    store_root: Path, client_ports: list[int], route_ports: list[int], host: str = "127.0.0.1"
) -> ClusterPlan:
    """Nodes ``syntx-1`` … ``syntx-N`` with stores ``store_root/syntx-i``."""
    if len(client_ports) != len(route_ports) or len(client_ports) < 1:
        raise ValueError("a cluster needs as many route ports as client ports, at least one")
    nodes = tuple(
        ClusterNode(f"{CLUSTER_NAME}-{index}", client, route, store_root / f"{CLUSTER_NAME}-{index}")
        for index, (client, route) in enumerate(zip(client_ports, route_ports, strict=True), start=1)
    )
    return ClusterPlan(nodes, host)
