"""Sequence-model RL in JAX: Generalized Decision Transformer and MxT-Bench."""
import setuptools

setuptools.setup(
    name="seqrl",
    version="0.1.0",
    description="Generalized Decision Transformer and MxT-Bench on JAX/Flax/Brax.",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["gdt", "gdt.*", "morphology", "morphology.*", "experiments", "experiments.*", "launch", "launch.*"]),
    package_data={"morphology": ["components/unimals/*.json"]},
    install_requires=[
        # Floors are the versions tested together (BUILD.md); brax PPO needs gdt.compat on jax>=0.9.
        "jax>=0.10.2",
        "jaxlib>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "brax>=0.14.2",
        "mujoco>=3.3",
        "mujoco-mjx>=3.3",
        "orbax-checkpoint>=0.12.8",
        "numpy>=2.0",
        "absl-py>=2.1",
        "ml_collections>=1.1",
        "h5py>=3.11",
        "matplotlib>=3.9",
        "tensorboardX>=2.6",
        # Evaluating D4RL/Minari-trained policies on the MuJoCo v5 envs (gdt.gym_eval); 1.4 runs on mujoco 4.
        "gymnasium[mujoco]>=1.4",
    ],
    extras_require={
        # minari: tests write datasets with Minari's own DataCollector (the loader reads its hdf5 with h5py alone).
        "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.8", "scipy>=1.13", "ruff>=0.6", "minari[hdf5]>=0.5.4"],
        "notebook": ["jupyter", "nbclient", "nbformat"],
        # The reference PyTorch train step of benchmarks/bench_train_step.py (CPU build is enough; tested 2.13.0+cpu).
        "bench": ["torch>=2.13"],
    },
)
