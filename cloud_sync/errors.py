"""The cloud service's exceptions: everything it raises on purpose derives from CloudSyncError."""


class CloudSyncError(Exception):
    """Base of the cloud service's errors."""
