"""The node's CNI config keeps pod traffic on this machine: no masquerading, no default route, every
address and route inside 198.18.0.0/15."""

import ipaddress
import json

from localcluster.network import NODE_HOST, POD_CIDR, ROUTED, SERVICE_CIDR, write_cni_config


def test_the_bridge_config_never_masquerades_and_routes_only_the_node_ranges(tmp_path):
    config = json.loads(write_cni_config(tmp_path / "net.d", tmp_path / "ipam").read_text())
    (bridge,) = config["plugins"]
    routed = ipaddress.ip_network(ROUTED)
    assert (bridge["type"], bridge["ipMasq"], bridge["isDefaultGateway"]) == ("bridge", False, False)
    assert all(ipaddress.ip_network(r["dst"]).subnet_of(routed) for r in bridge["ipam"]["routes"])
    assert ipaddress.ip_network(SERVICE_CIDR).subnet_of(routed) and ipaddress.ip_network(POD_CIDR).subnet_of(routed)
    (subnet,) = bridge["ipam"]["ranges"][0]
    assert ipaddress.ip_address(subnet["gateway"]) == ipaddress.ip_address(NODE_HOST)
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")
