"""Every error rnnedge raises on purpose derives from RnnedgeError.

The CLI catches RnnedgeError and prints its message as one line: exit code 2 for a UsageError
(the command line asks for something that cannot be done, found before any work starts), 1 for
every other error (the work failed). Messages name the file, tensor, op or argument at fault
and say what was expected.
"""


class RnnedgeError(Exception):
    """Base of all rnnedge errors."""


class UnsupportedModelError(RnnedgeError):
    """The model uses an op or layer rnnedge cannot lower (named in the message)."""


class ExportError(RnnedgeError):
    """Capture or emission failed for a reason other than an unsupported op."""


class GraphError(RnnedgeError):
    """A Graph is malformed: unknown op, undefined tensor, bad attribute."""


class BundleError(RnnedgeError):
    """A bundle is missing, corrupt, tampered with or of an unknown version."""


class InputError(RnnedgeError):
    """A step input or state has the wrong shape or dtype, or holds NaN/Inf."""


class BackendError(RnnedgeError):
    """A backend is not installed or failed to load or run a model file."""


class ModelSpecError(RnnedgeError):
    """A MODEL spec or weights file given to the CLI cannot be loaded."""


class ProfileError(RnnedgeError):
    """A board profile file is malformed (the message names the field) or unknown."""


class StreamsError(RnnedgeError):
    """Streams cannot be batched for this bundle, or a stream id is unknown."""


class UsageError(RnnedgeError):
    """An option, an output path or an optional dependency an option needs is wrong or missing;
    checked before any work starts (CLI exit code 2)."""


class MissingDependencyError(UsageError):
    """An optional dependency is not installed; the message names the extra to install."""


class BackendFallbackWarning(RuntimeWarning):
    """backend="auto" could not load the bundle on a preferred backend and used the next one."""


class CalibrationRangeWarning(UserWarning):
    """Data (e.g. the golden sequences) drives a tensor beyond the range int8 calibrated for it."""
