"""Occupation vocabularies (occ1990dd by default) and the special non-working states."""

from laborlm.occupations.taxonomy import SPECIAL_STATES, Occupation, Taxonomy

__all__ = ["SPECIAL_STATES", "Occupation", "Taxonomy"]
