"""Subcommands of the benchmark (``ghostnet bench ...``); they arrive with the benchmark."""


def register(sub):
    """No benchmark subcommands yet."""
