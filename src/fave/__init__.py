"""fave: generative sequential recommendation (FAVE and its baselines)."""

__version__ = "0.1.0"
