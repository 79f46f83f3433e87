"""Operator access: the admin HTTP service (stats, metrics, control) and the SSH manhole."""

# The address each TCP-like endpoint type binds to when its description names no interface.
_LOOPBACK = {"tcp": "127.0.0.1", "ssl": "127.0.0.1", "tcp6": r"\:\:1"}


def loopback_unless_named(description: str) -> str:
    """
    A strports description for an operator service: one that names no interface binds to
    loopback, not to every interface as strports would. Both services can stop the server.
    """
    loopback = _LOOPBACK.get(description.partition(":")[0].lower())
    if loopback is None or "interface=" in description:
        return description
    return f"{description}:interface={loopback}"
