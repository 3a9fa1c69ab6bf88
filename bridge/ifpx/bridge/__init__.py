"""The ifpx bridge: netlink listener, port/proxy bindings, event publisher, command server."""
