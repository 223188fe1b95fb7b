"""Settings classes only; this package imports nothing else of the project."""
