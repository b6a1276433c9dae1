"""The reliability suite's token-leak check applies to the fuzz tests too."""

from tests.reliability.conftest import _token_never_leaks, pytest_runtest_makereport

__all__ = ["_token_never_leaks", "pytest_runtest_makereport"]
