"""Verdicts: the policy (acceptance rules and A/B schedule), reason codes, the rules that decide,
regression checks, and the jobs that give verdicts (verify, gate, the pruning sweep)."""
