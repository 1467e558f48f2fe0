"""Backends of the executor contract (executor/contract.py): one engine each."""
