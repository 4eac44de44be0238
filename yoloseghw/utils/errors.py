"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class UserInputError(Exception):
    """Bad input from the user (missing file, invalid dataset, wrong model file, ...)."""
