"""The experiments: `python -m experiments.<name>` (see README.md and docs/experiments.md).

UsageError lives here, in the package every module of it already loads, because every layer
raises it (the flags, the run directory, the sweeps); see common.py for how a CLI prints it.
"""


class UsageError(Exception):
    """A problem with the user's input: printed as one sentence, exit code 2."""
