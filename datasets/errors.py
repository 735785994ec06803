"""The data's own error, light to import: the command line's one-line error report names it
before any dataset (or torch) is loaded."""


class DataError(RuntimeError):
    """Missing or corrupt data; the message is one line naming the file or directory."""
