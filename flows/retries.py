"""When Prefect should retry a failed task: transient failures yes, the user's mistakes no."""

from streetaudit.sql.errors import StreetauditError


def worth_retrying(task, task_run, state) -> bool:
    """Prefect retry condition: a failure the user must fix (bad key, bad input) is final.

    Retrying those only delays the error by the retry delay; network hiccups, timeouts and
    crashes are retried, and the stages resume where they stopped.
    """
    from streetaudit.flows.database_loss import DatabaseLost

    try:
        state.result()
    except DatabaseLost:  # the database may be back by the retry; the stage resumes
        return True
    except StreetauditError:
        return False
    except BaseException:  # anything else may be transient; Prefect retries it
        return True
    return True
