from django.apps import AppConfig


class CoderadminConfig(AppConfig):
    name = "coderadmin"
    verbose_name = "coderadmin"
