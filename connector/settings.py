"""Configuration from environment variables (and a `.env` file for local runs).

Every variable is validated at start-up; a missing or invalid one stops the app with
`ConfigError`, whose message names the variable and says what is wrong. Secrets are
`SecretStr`, so they print as `**********` in logs, errors and reprs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Literal, TypeVar

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Region = Literal[
    "europe-west1.gcp",
    "us-central1.gcp",
    "australia-southeast1.gcp",
    "eu-central-1.aws",
    "us-east-2.aws",
]


class ConfigError(Exception):
    """The configuration cannot be used; the message is safe to print (no secret values).

    `problems`: one line per bad variable (`NAME: what is wrong`), so that every caller can
    report them all at once, one message each."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))


def check_all(*loads: Callable[[], object]) -> None:
    """Call every loader; raise one `ConfigError` with the problems of all that failed, so an
    operator fixes the whole configuration in one round instead of one group per start."""
    problems: list[str] = []
    for load in loads:
        try:
            load()
        except ConfigError as error:
            problems += [p for p in error.problems if p not in problems]
    if problems:
        raise ConfigError(problems)


def settings_config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", extra="ignore", case_sensitive=False
    )


class CommercetoolsSettings(BaseSettings):
    model_config = settings_config("CTP_")

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    project_key: str = Field(min_length=1)
    scope: str | None = None
    region: Region | None = None
    api_url: AnyHttpUrl | None = None
    auth_url: AnyHttpUrl | None = None

    @model_validator(mode="after")
    def _hosts_known(self) -> CommercetoolsSettings:
        if self.region is None and (self.api_url is None or self.auth_url is None):
            raise ValueError("set CTP_REGION, or both CTP_API_URL and CTP_AUTH_URL")
        return self

    @property
    def api_base(self) -> str:
        return _base(self.api_url, f"https://api.{self.region}.commercetools.com")

    @property
    def auth_base(self) -> str:
        return _base(self.auth_url, f"https://auth.{self.region}.commercetools.com")


class NewStoreSettings(BaseSettings):
    model_config = settings_config("NEW_STORE_")

    base_url: AnyHttpUrl
    shop: str = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_url: AnyHttpUrl | None = None

    @model_validator(mode="after")
    def _one_auth_flow(self) -> NewStoreSettings:
        if not self.uses_client_credentials and not (self.username and self.password):
            raise ValueError(
                "set NEW_STORE_USERNAME and NEW_STORE_PASSWORD, or all of "
                "NEW_STORE_CLIENT_ID, NEW_STORE_CLIENT_SECRET and NEW_STORE_TOKEN_URL"
            )
        return self

    @property
    def uses_client_credentials(self) -> bool:
        return bool(self.client_id and self.client_secret and self.token_url)

    @property
    def api_base(self) -> str:
        return _base(self.base_url, "")


class Settings:
    """All settings; each group is validated on first use, so a command that needs only
    commercetools (the deploy scripts) does not demand NewStore variables.

    Groups given to the constructor are used as they are (the sandbox and tests do that).
    """

    def __init__(
        self,
        commercetools: CommercetoolsSettings | None = None,
        newstore: NewStoreSettings | None = None,
    ) -> None:
        given = {"commercetools": commercetools, "newstore": newstore}
        # cached_property reads the instance dict first, so a given group wins.
        self.__dict__.update({name: group for name, group in given.items() if group})

    @cached_property
    def commercetools(self) -> CommercetoolsSettings:
        return load_settings_group(CommercetoolsSettings, "CTP_")

    @cached_property
    def newstore(self) -> NewStoreSettings:
        return load_settings_group(NewStoreSettings, "NEW_STORE_")

    def validate_all(self) -> Settings:
        """Both groups, every bad variable of both reported at once."""
        check_all(lambda: self.commercetools, lambda: self.newstore)
        return self


SettingsGroup = TypeVar("SettingsGroup", bound=BaseSettings)


def load_settings_group(cls: type[SettingsGroup], prefix: str) -> SettingsGroup:
    """The group read from the environment; `ConfigError` names each invalid variable."""
    try:
        return cls()
    except ValidationError as error:
        raise ConfigError(_describe(error, prefix)) from None


def _describe(error: ValidationError, prefix: str) -> list[str]:
    """One line per bad variable; never its value (include_input=False)."""
    problems = []
    for issue in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in issue["loc"])
        variable = f"{prefix}{field}".upper() if field else f"{prefix}*"
        message = issue["msg"].removeprefix("Value error, ")
        problems.append(f"{variable}: {message}")
    return problems


def _base(url: AnyHttpUrl | None, default: str) -> str:
    return (str(url) if url else default).rstrip("/")
