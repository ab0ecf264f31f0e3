"""The robot's link to the cloud: the MQTT transport (and, later, the sender and down-sync on top of it)."""
