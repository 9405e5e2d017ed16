"""Fixtures shared by the service tests, and the contract check of their fake providers."""

from tests.contracts.plugin import (  # noqa: F401  (hooks are found by name)
    pytest_collection_modifyitems,
    pytest_runtest_call,
    pytest_runtest_protocol,
    pytest_runtest_teardown,
)
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
