"""Trajectory datasets: the container (`Trajectories`, one validated npz per dataset) and loaders
for D4RL hdf5 and Minari files."""

from gdt.data.trajectories import (
    SCHEMA_VERSION,
    DatasetError,
    Trajectories,
    dataset_path,
    default_metadata,
    level_return_stats,
)

__all__ = ["SCHEMA_VERSION", "DatasetError", "Trajectories", "dataset_path", "default_metadata",
           "level_return_stats"]
