"""The package version, in a module of its own so that code inside cnnlab can read it
without importing the top-level package (which imports that code)."""
__version__ = "0.1.0"
