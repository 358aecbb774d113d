from django.apps import AppConfig


class CoderadminConfig(AppConfig):
    name = "coderadmin"
    verbose_name = "coderadmin"

    def ready(self) -> None:
        # Connects the login/logout audit and rate-limit signal receivers.
        from coderadmin import auth  # noqa: F401
