"""Shared data models of railbot: the seed's tables, the Store API's bodies, wire formats. No I/O."""
