"""Variants of a baseline: build each recipe's artifact with its facts and quality, for every job."""
