"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (a path, a config value, a file). The message names the
    thing and says what to do; no traceback is shown."""


class ConfigError(UserError):
    pass


class CheckpointError(UserError):
    pass


class DivergenceError(UserError):
    """Training produced a non-finite loss or gradient."""


class InputWarning(UserWarning):
    """A value that works, but likely not as meant; the CLI prints it as one line."""


class DeadRunError(UserError):
    """Training is stuck at chance: a layer passes no gradient, or validation stays at chance with
    the loss pinned (train/health.py). Not a DivergenceError: rolling back cannot revive it."""
