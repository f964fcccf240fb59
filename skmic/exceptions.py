"""The exception and warning types that skmic's estimators raise and emit."""

__all__ = ["TrainingDivergedError", "TrainingInterruptedWarning"]


class TrainingDivergedError(FloatingPointError, ValueError):
    """Training diverged: the loss (or the model's output) became NaN or infinite.

    A :class:`FloatingPointError` and, since its usual causes are the
    parameters or the input (a learning rate too large, an input far from
    unit scale), a :class:`ValueError` too, so that the callers that report
    bad parameters and bad input (the command line, a grid search) report
    it the same way. Every estimator raises this one type for divergence.

    Examples
    --------
    >>> from skmic.exceptions import TrainingDivergedError
    >>> issubclass(TrainingDivergedError, ValueError)
    True
    """


class TrainingInterruptedWarning(UserWarning):
    """``fit`` was interrupted (KeyboardInterrupt) and kept the model trained so far.

    The estimator is fitted, ``n_iter_`` tells how many epochs it trained;
    ``fit`` with ``warm_start=True`` trains it further.

    Examples
    --------
    >>> import warnings
    >>> from skmic.exceptions import TrainingInterruptedWarning
    >>> warnings.simplefilter("error", TrainingInterruptedWarning)  # make an interrupted fit raise
    >>> warnings.resetwarnings()
    """
