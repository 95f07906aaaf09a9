"""The two recipes that change nothing: the baseline itself, and `identity`, an exact copy of the
baseline's file (a control that must never be accepted). The variant builder makes their artifacts."""

from harness.recipes.catalogue import BASELINE, IDENTITY, RecipeKind, register

register(RecipeKind(BASELINE, "none", "the model as given; always measured"))
register(RecipeKind(IDENTITY, "any", "an exact copy of the baseline's file: a control that must never win"))
