"""The engineers' terminal UI (`robot-agent tui`): Textual screens over the local control API's client."""
