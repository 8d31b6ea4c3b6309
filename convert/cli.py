"""Subcommands of the converter (``ghostnet convert``, ``ghostnet eval``); they arrive with the converter."""


def register(sub):
    """No converter subcommands yet."""
