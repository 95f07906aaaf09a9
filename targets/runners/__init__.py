"""Runners: where measurements run (this host today), the worker process, the timing loop and the
measurement protocol."""
