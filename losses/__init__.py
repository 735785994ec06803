"""The losses: one module per family, the shared contract (base module, checks) in ``_core``."""

__all__: list[str] = []
