"""Exceptions with messages meant for the person at the keyboard."""


class WaveGMSError(Exception):
    """Base class: anything the user can fix (bad input, missing files) raises a subclass."""


class InputError(WaveGMSError, ValueError):
    """An image, mask, layer or argument that cannot be used as given."""


class ImageReadError(InputError):
    """A file that is not a readable image."""


class ModelFileError(WaveGMSError):
    """A model file that is missing, corrupt, of an unknown format or inconsistent."""


class WeightsNotFoundError(WaveGMSError, FileNotFoundError):
    """Frozen autoencoder weights that are neither on disk nor downloadable."""


class OutputExistsError(WaveGMSError, FileExistsError):
    """An output file already exists and overwriting was not asked for."""


class Cancelled(WaveGMSError):
    """Raised inside long work when the user pressed Stop/Cancel."""


class OutputWriteError(WaveGMSError, OSError):
    """An output file or folder that cannot be written (read-only place, a file in the way)."""


class MaskWarning(UserWarning):
    """A mask or labels layer was usable, but not as it stood (e.g. several labels merged)."""


class ReducedBatchWarning(UserWarning):
    """Prediction ran out of memory and went on with a smaller batch."""


#: why an image gets no mask when the model's output is not finite
NONFINITE_SOFT = (
    "the model gave a soft mask that is not finite (NaN or infinite), so no mask is made; "
    "the model is damaged: restore or retrain it"
)


class NoSignalError(InputError):
    """An image that holds no picture to segment (constant, no finite value, blank after
    windowing): a mask of it would be a confident answer to nothing."""
