"""Fixtures for tests and benchmarks (a local provider server, seeded datasets); never imported by the product."""
