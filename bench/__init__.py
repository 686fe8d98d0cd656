"""Benchmarks against the sandbox: `python -m bench.event_bench`, `bench.event_requests`."""
