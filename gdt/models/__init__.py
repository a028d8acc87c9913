"""Flax modules: the GPT-2 trunk, the GDT policy and its conditioning embedders, the BDT anti-causal encoder."""

from gdt.models.policy import EMBEDDERS, AntiCausalEncoder, GDTPolicy
from gdt.models.transformer import TransformerTrunk

__all__ = ["EMBEDDERS", "AntiCausalEncoder", "GDTPolicy", "TransformerTrunk"]
