"""MxT-Bench on Brax: procedural morphologies x tasks, the MTG observation, behavior distillation."""
