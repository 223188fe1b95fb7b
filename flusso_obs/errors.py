"""Errors of the command line, in their own module so `python -m flusso_obs.cli` and imports agree."""


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 2."""
