import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from environments import crypto
from tests.environments.factories import ImageFactory

SECRET = "s3cr3t-registry-token"


def test_round_trip_and_empty_stays_empty():
    token = crypto.encrypt(SECRET)
    assert SECRET not in token
    assert crypto.decrypt(token) == SECRET
    assert crypto.encrypt("") == ""
    assert crypto.decrypt("") == ""


def test_key_is_derived_from_secret_key_when_none_is_configured(settings):
    settings.CREDENTIALS_ENCRYPTION_KEY = ""
    token = crypto.encrypt(SECRET)
    assert Fernet(crypto.derive_key(settings.SECRET_KEY)).decrypt(token.encode()).decode() == SECRET
    assert crypto.derive_key("a") != crypto.derive_key("b")


def test_configured_key_wins_over_secret_key(settings):
    key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEY = key
    token = crypto.encrypt(SECRET)
    assert Fernet(key.encode()).decrypt(token.encode()).decode() == SECRET


def test_changed_key_gives_a_clear_error(settings):
    token = crypto.encrypt(SECRET)
    settings.CREDENTIALS_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(crypto.DecryptionError, match="cannot be decrypted"):
        crypto.decrypt(token)


def test_malformed_configured_key_is_an_improper_configuration(settings):
    settings.CREDENTIALS_ENCRYPTION_KEY = "not-a-fernet-key"
    with pytest.raises(ImproperlyConfigured, match="CREDENTIALS_ENCRYPTION_KEY"):
        crypto.encrypt(SECRET)


@pytest.mark.django_db
def test_image_credentials_are_encrypted_at_rest():
    image = ImageFactory(registry_username="robot")
    image.registry_password = SECRET
    image.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM environments_image WHERE id = %s", [image.pk])
        row = cursor.fetchone()
    assert not any(isinstance(value, str) and SECRET in value for value in row)
    image.refresh_from_db()
    assert image.registry_password == SECRET
    assert image.has_registry_credentials
