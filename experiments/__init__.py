"""absl entry points (`python -m experiments.<job>`) and their configs (`experiments/configs/`)."""
