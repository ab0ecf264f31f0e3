"""railbot's cloud service."""
