"""Analyses over the packets and probes tables. Nothing here reads files or knows their formats."""
