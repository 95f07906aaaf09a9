"""`speedproof search` and `speedproof sensitivity`: the fastest compression that keeps quality,
found by measuring points of the recipe space on the target, and how much each layer can lose."""

# the samplers take numpy seeds (below 2**32); a resumed session and each trial add one to the seed
MAX_SEED = 2**31 - 1
