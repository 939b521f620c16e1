"""One error type for bad input, so that every command line reports it as a
single line naming the file and the problem instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed model, a bad option."""

    def __init__(self, path, problem):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)
