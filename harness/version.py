"""The version speedproof reports in records and `--version` (the package metadata says the same)."""

__version__ = "0.1.0"
