"""ifpx subscribers: what DPDK workers and ops tools embed to follow the bridge."""
