"""Hydra plugins of this project (Hydra discovers plugins in the ``hydra_plugins`` namespace)."""
