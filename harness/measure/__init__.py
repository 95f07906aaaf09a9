"""Measurement orchestration on the planning side: bench cells, A/B pairs and their schedule,
latency statistics and the speedup interval."""
