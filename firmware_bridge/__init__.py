"""The framed serial protocol to the robot's microcontroller, its transport, and an MCU simulator."""
