"""The robot's link to the cloud: the MQTT transport (`mqtt.py`) and the outbox sender (`sender.py`)."""
