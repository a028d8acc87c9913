"""Flax modules of GDT: the policy and its conditioning embedders (the trunk is gdt.core.transformer)."""

from gdt.models.embedders import AntiCausalEncoder
from gdt.models.policy import GDTPolicy

__all__ = ["AntiCausalEncoder", "GDTPolicy"]
