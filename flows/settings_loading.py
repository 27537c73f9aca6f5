"""Settings read from the environment, a bad value reported as an InputError naming its variable."""

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from streetaudit.flows.errors import InputError

S = TypeVar("S", bound=BaseSettings)


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
