"""Fixtures shared by the service tests."""

from tests.fixtures.mail import (  # noqa: F401  (fixtures are found by name)
    dovecot,
    dovecot_for_bad_logins,
    dovecot_instances,
    imap_account,
    smtp_server,
    start_smtp_server,
    tls_files,
    trust_test_ca,
)
from tests.fixtures.mqtt import (  # noqa: F401  (fixtures are found by name)
    mosquitto,
    mosquitto_with_login,
    start_mosquitto,
)
