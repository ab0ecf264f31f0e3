"""The package's errors: one base, so callers can catch everything the bridge raises in one place."""

from __future__ import annotations


class FirmwareBridgeError(Exception):
    """Base of every error firmware_bridge raises."""


class NotLinkedError(FirmwareBridgeError):
    """A command was given while the link to the MCU is not up."""


class LinkLostError(FirmwareBridgeError):
    """The link went down while a command waited for its reply: it may or may not have run."""


class IncompatibleFirmwareError(FirmwareBridgeError):
    """The MCU speaks another protocol major version or schema; the message names both sides."""


class TransportError(FirmwareBridgeError):
    """The serial port could not be opened, or failed; the message names the port and the cause."""


class CommandRefusedError(FirmwareBridgeError):
    """The MCU answered a command with a result other than OK (e.g. the e-stop is pressed)."""
