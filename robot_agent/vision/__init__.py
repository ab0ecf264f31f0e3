"""The robot's eyes: camera capture, and what is recognised in its frames."""
