"""Reliability and safety suite: bad input, faults and untrusted files (docs/reliability.md)."""
