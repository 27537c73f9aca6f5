"""Errors caused by what the user gave us: a file, a row, a parameter."""

from streetaudit.sql.errors import StreetauditError


class InputError(StreetauditError):
    """Bad input; the message names the file, row or parameter and the reason."""


def worth_retrying(task, task_run, state) -> bool:
    """Prefect retry condition: a failure the user must fix (bad key, bad input) is final.

    Retrying those only delays the error by the retry delay; network hiccups, timeouts and
    crashes are retried, and the stages resume where they stopped.
    """
    try:
        state.result()
    except StreetauditError:
        return False
    except BaseException:  # anything else may be transient; Prefect retries it
        return True
    return True
