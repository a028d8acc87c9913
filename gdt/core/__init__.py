"""The algorithm-free core shared by GDT (`gdt`) and MxT-Bench (`morphology`).

registry (name -> constructor tables), config (one override parser), cli (field rules of config files, one-line
errors for entry points), workdir (atomic files, metric writers,
progress, process-0 guard), runtime (compile cache, brax shim), transformer (the trunk), trainer (train state,
optimizers, scanned AOT steps, mesh, host loop with hooks and resume), checkpoint (orbax, models rebuilt from a
registry record), rollout (chunked scan over a vmapped Brax env), ppo (brax PPO with snapshots and resume).

Rule: nothing here imports from `gdt`'s algorithms or from `morphology` (tests/test_infra.py enforces it).
"""
