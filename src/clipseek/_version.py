"""The version of clipseek: the one source (pyproject reads it; `clipseek.__version__` is this)."""

__version__ = "0.2.0"
