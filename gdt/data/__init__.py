"""Trajectory datasets: the container (`Trajectories`, one validated npz per dataset) and loaders
for D4RL hdf5 and Minari files."""

from gdt.data.loaders import GYM_OBSERVATION_LAYOUTS, load_d4rl_hdf5, load_minari, parse_dataset_name
from gdt.data.trajectories import (
    SCHEMA_VERSION,
    DatasetError,
    Trajectories,
    dataset_path,
    default_metadata,
    level_return_stats,
)

__all__ = ["GYM_OBSERVATION_LAYOUTS", "SCHEMA_VERSION", "DatasetError", "Trajectories", "dataset_path",
           "default_metadata", "level_return_stats", "load_d4rl_hdf5", "load_minari", "parse_dataset_name"]
