"""Devices the robot agent drives (gate, lights, buzzer, compartments, card reader, e-stop, GPIO)."""
