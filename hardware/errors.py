"""The package's errors: one base, so the agent can catch everything a device raises in one place.

Errors from firmware_bridge never leave this package as they are: `hardware.mcu` translates them here, at the
boundary, so the agent knows only these. Bad arguments are not among them: they are `ValueError`s (a bug in
the caller, not a state of the robot).
"""

from __future__ import annotations


class HardwareError(Exception):
    """Base of every error hardware raises."""


class EStopPressedError(HardwareError):
    """An actuator command was refused because the e-stop is pressed; nothing moved."""

    def __init__(self, command: str, *, by_mcu: bool = False) -> None:
        self.command = command
        self.by_mcu = by_mcu
        where = " by the MCU" if by_mcu else ""
        super().__init__(
            f"{command} refused{where}: the e-stop is pressed (nothing moves until it is released)"
        )


class DeviceError(HardwareError):
    """A device refused or failed a command; names the command and what the MCU answered."""

    def __init__(self, command: str, result: str) -> None:
        self.command = command
        self.result = result
        super().__init__(f"{command} failed: the MCU answered {result}")


class DeviceUnavailableError(HardwareError):
    """The device cannot be reached (no link to the MCU, a GPIO chip that cannot be opened): nothing was
    done, or, when the link went down while waiting for the reply, the command may or may not have run."""
