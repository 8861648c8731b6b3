"""The one error type of the data package: a file or data set that cannot be read or fetched."""


class DataError(ValueError):
    """A data file is missing, corrupt or truncated, or no source could provide it.

    The message names the file or data set, says what was wrong and what to do about it.
    """
