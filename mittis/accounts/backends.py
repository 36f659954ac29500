"""Staff logins (the admin's): django-axes refuses a locked-out login before its password is even hashed.
API keys never pass through here (mittis.accounts.authentication), so no lockout can touch the API."""

from axes.backends import AxesStandaloneBackend


class StaffLoginLockoutBackend(AxesStandaloneBackend):
    """axes' backend, for logins over HTTP. A login without a request is not one (a shell, `Client.login` in
    tests): there is no client to count failures for, and axes would raise instead of letting it through."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
