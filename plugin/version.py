"""The single place the deltaface version is defined (setup.py reads it)."""

__version__ = "0.1.0"
