"""Hardware: target profiles (TOML data), host fingerprinting and matching, runtime backends,
and the runner that measures one cell in its own worker process."""
