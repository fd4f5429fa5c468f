"""omnieval: reproducible evaluation of unified video models."""
__version__ = "0.1.0"
