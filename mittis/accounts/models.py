from django.db import models

from mittis import versions
from mittis.ids import public_id_default


class Account(models.Model):
    """A customer: owns its senders, API keys, messages and everything else."""

    public_id = models.CharField(max_length=40, default=public_id_default("acct"), editable=False)  # unique: Meta (mittis/ids.py)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True, help_text="An inactive account's keys are refused.")
    # Blank means the defaults of settings.MITTIS_RATE_LIMIT / MITTIS_RATE_LIMIT_WINDOW.
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests each API key of this account may make per window; blank for the default.")
    rate_limit_window = models.PositiveIntegerField(
        null=True, blank=True, help_text="The window in seconds; blank for the default.")
    retention_days = models.PositiveIntegerField(
        default=30, help_text="Message bodies are redacted this many days after the message was created.")
    help_reply = models.CharField(
        max_length=320, blank=True,
        help_text="Sent to whoever texts HELP or INFO to one of the account's senders.")
    # Pinned at creation to the newest version: a request without a Mittis-Version header is answered in it,
    # and so are its messages' status_callback requests (mittis/versions.py). Rows written by code that predates
    # versions (those before the column, a process not yet upgraded in a rolling deploy) get the first version.
    api_version = models.CharField(
        max_length=10, default=versions.current, db_default=versions.FIRST_VERSION, validators=[versions.validate],
        help_text="The API version of requests without a Mittis-Version header, and of status_callback "
                  "requests. Its webhook endpoints keep their own.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["public_id"], name="account_public_id_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class ApiKey(models.Model):
    """A secret that authenticates as one account in one mode. Only its hash is kept."""

    public_id = models.CharField(max_length=40, default=public_id_default("key"), editable=False)  # unique: Meta (mittis/ids.py)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    livemode = models.BooleanField(default=False)
    # The start of the secret, enough for a person to tell keys apart ("mk_test_Ab3d…").
    prefix = models.CharField(max_length=16, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)  # unique: Meta (mittis/ids.py)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"
        constraints = [models.UniqueConstraint(fields=["public_id"], name="api_key_public_id_unique"),
                       models.UniqueConstraint(fields=["hashed_secret"], name="api_key_hashed_secret_unique")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({'live' if self.livemode else 'test'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
