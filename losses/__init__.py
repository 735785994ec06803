"""The losses: one module per family; the shared contract in ``base`` (the base module, the one
reduction) and ``checks`` (the input checks, which ``datasets`` shares)."""
