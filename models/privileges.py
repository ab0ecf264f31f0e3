"""What an engineer may do on a robot: the bits of the seed's `engineers.privileges` integer.

The seed gives the column no meanings; these are them, defined once for the cloud (which stores the integer
an admin sets through the Base API) and the robot (whose local control API checks them before each action).
One bit per kind of action, not levels: the engineer who refills the shop's lockers need not move the gate.
Status and the live event stream need no privilege (decision 48): the socket's file mode is their guard.
Bits above the ones named here are kept as they are and mean nothing yet.
"""

from __future__ import annotations

import enum


class Privilege(enum.IntFlag):
    GATE = 1  # pulse the passenger gate
    HARDWARE = 2  # test the lights and the buzzer
    COMPARTMENTS = 4  # open a compartment (they hold passengers' orders)
    SYNC = 8  # ask for a sync now
    TICKETS = 16  # verify a ticket by hand (it is used up when valid)
    SALES = 32  # place an order for a passenger
    FACES = 64  # enrol or delete a passenger's face

    @classmethod
    def of(cls, value: int) -> Privilege:
        """The named privileges in a stored integer (unknown bits dropped)."""
        return cls(value & ALL)

    def names(self) -> list[str]:
        """The privileges' names, lowest bit first."""
        return [p.name for p in Privilege if p in self and p.name is not None]


ALL = sum(p.value for p in Privilege)
