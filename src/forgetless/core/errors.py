"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class ForgetlessError(Exception):
    """Base class: bad input (config, data file, model path, run directory)."""


class ConfigError(ForgetlessError):
    """A config file or --set override is wrong (unknown key, wrong type, impossible value)."""


class DataError(ForgetlessError):
    """A data file is missing or malformed; the message names file, line and what was expected."""


class ModelError(ForgetlessError):
    """A model cannot be found or loaded."""


class RunDirError(ForgetlessError):
    """A run directory is missing, incomplete, or belongs to a different config."""


class TrainingError(ForgetlessError):
    """Training cannot go on (a non-finite loss); the message names the experience and step."""


class RunFailedError(ForgetlessError):
    """Runs of a study failed in their own processes; the message names them and their logs."""
