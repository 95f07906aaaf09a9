"""`speedproof search` and `speedproof sensitivity`: the fastest compression that keeps quality,
found by measuring points of the recipe space on the target, and how much each layer can lose."""
