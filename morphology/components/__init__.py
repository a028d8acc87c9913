"""Morphology components: family generators and unimal JSON files -> `Morphology` descriptions -> MJCF.

`make(family, **params)` builds any registered family (`FAMILIES`: the v1 procedural families and
`unimal`); `unimal_ids()` lists the shipped unimal descriptions and those of
directories added with `unimal.register_unimal_dir` or $MXT_UNIMAL_DIRS.
"""

from morphology.components.description import Body, Geom, Hinge, Morphology, MorphologyError
from morphology.components.families import FAMILIES, Family
from morphology.components.unimal import unimal_ids


def make(family: str, **params) -> Morphology:
  """A validated morphology, e.g. `make("ant", num_legs=4)`; unknown names list the closest ones."""
  return FAMILIES.get(family).build(**params)


__all__ = ["Body", "FAMILIES", "Family", "Geom", "Hinge", "Morphology", "MorphologyError", "make", "unimal_ids"]
