"""Exceptions raised by training and checkpoint files."""


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite; training stopped at once.

    ``epoch`` and ``batch`` (0-based) say where; ``loss`` is the offending value."""

    def __init__(self, message, epoch=None, batch=None, loss=None):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, truncated, corrupt, or does not match its model.

    Loading raises this instead of returning a partly loaded model."""
