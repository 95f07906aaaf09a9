"""Hardware, and everything that runs where a measurement happens: target profiles (TOML data),
host fingerprinting and matching, runtime backends, and the runners and worker processes that
measure. The bottom layer: it imports neither `harness` nor `exporters`, so a device needs only it."""
