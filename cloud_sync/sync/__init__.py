"""Sync with the fleet: the one MQTT link, ingest of robots' batches, down-sync of the change log, seq gaps,
and the broker itself (the cloud's login, robots' provisioning, Mosquitto's files)."""
