"""The link to the MQTT broker both programs share: paho's client, its network thread bridged to asyncio, and
the outage logging around it. The robot's `RobotLink` and the cloud's `CloudLink` are built on it; what is
theirs (topics, status and will, inboxes, what a PUBACK means to the caller) stays with them.

Layering: imports `models` only; `robot_agent` and `cloud_sync` may import it
(tests/unit/test_layering.py)."""
