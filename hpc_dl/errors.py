"""One exception tree. The CLI catches HpcdlError, prints its message on one line and exits non-zero."""


class HpcdlError(Exception):
    """Base of every error hpcdl reports to a user. The message is one line and says what to do."""

    exit_code = 1


class UsageError(HpcdlError):
    """Bad input from the user: a flag, a spec field, a profile field (exit 2)."""

    exit_code = 2


class SpecError(UsageError):
    """A JobSpec field is invalid."""


class ProfileError(UsageError):
    """A cluster profile is missing, malformed or invalid."""


class TemplateError(UsageError):
    """A Jinja template could not be rendered."""


class RunNotFound(UsageError):
    """No run directory matches what the user asked for."""


class SubmitError(HpcdlError):
    """The scheduler refused or failed the submission."""


class CollectError(HpcdlError):
    """Nothing could be collected."""


class MissingDependency(HpcdlError):
    """An optional dependency (horovod, mpirun, …) is not installed."""


class NotServable(UsageError):
    """A run whose checkpoint cannot answer predictions (none yet, or one that is not a whole model)."""
