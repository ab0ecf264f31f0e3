"""The robot's behaviour with passengers (issue 16): a pure state machine (`machine.py`) fed events
(`events.py`) and answering with actions (`actions.py`) in words from one catalogue (`texts.py`); the driver
(`driver.py`) feeds it and carries its actions out on the devices and the speaker (`speaker.py`), with the
seat and the places at the destination read from the store (`places.py`)."""
