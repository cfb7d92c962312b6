"""CLI subcommands: thin shells over the Python API, one module per group."""
