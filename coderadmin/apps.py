from django.apps import AppConfig


class CoderadminConfig(AppConfig):
    name = "coderadmin"
    verbose_name = "coderadmin"

    def ready(self) -> None:
        # Connects the login/logout audit and rate-limit signal receivers, the metrics' Celery and
        # state-change hooks, and the account-removal step of user deletion.
        from coderadmin import auth, lifecycle, metrics  # noqa: F401
