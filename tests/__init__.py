"""railbot's test suite."""
