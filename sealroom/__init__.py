"""sealroom: confidential clean rooms for machine learning."""

__version__ = "0.1.0"
