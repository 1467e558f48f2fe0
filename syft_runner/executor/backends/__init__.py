"""Executor backends: one module per engine, each implementing executor.contract.Backend."""
