"""The pod network: the built-in bridge (rtnl, ipam, bridge), hostPorts (nft, hostports) and CNI (cni)."""
