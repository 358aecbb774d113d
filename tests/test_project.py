from django.conf import settings


def test_custom_user_model_is_ours():
    assert settings.AUTH_USER_MODEL == "coderadmin.User"
