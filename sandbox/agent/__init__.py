"""The node agent (`sandbox agent`): the process that owns every pod of the node, its socket
protocol, and the static pod sources it runs pods from (a manifest directory and a manifest URL,
read as the kubelet reads them; their KubeletConfiguration settings in kubeletconfig)."""
