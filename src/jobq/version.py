"""The version of jobq, in a leaf module anything may import without loading the package."""

__version__ = "0.1.0"
