"""One module per ``--mode``: a frozen config dataclass and a ``run(config)`` function."""
