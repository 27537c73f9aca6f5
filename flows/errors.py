"""Errors caused by what the user gave us: a file, a row, a parameter."""

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from streetaudit.sql.errors import StreetauditError

S = TypeVar("S", bound=BaseSettings)


class InputError(StreetauditError):
    """Bad input; the message names the file, row or parameter and the reason."""


def load_settings(cls: type[S], *, echo_value: bool = True) -> S:
    """Settings from the environment, a bad value reported by its variable's name.

    `echo_value=False` for settings holding keys: their values never reach a message.
    """
    try:
        return cls()
    except ValidationError as error:
        first = error.errors()[0]
        name = f"{cls.model_config.get('env_prefix', '')}{str(first['loc'][0]).upper()}"
        got = f" (got {first.get('input')!r})" if echo_value else ""
        raise InputError(f"{name}: {first['msg']}{got}") from None


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
