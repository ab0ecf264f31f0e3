"""The robot's local control API on a unix socket (server.py), its sessions (sessions.py), who engineers
are (engineers.py), orders (orders.py), log lines as live events (logs.py) and its OpenAPI document."""
