"""What an API key's secret looks like and how it is stored: its mode prefixes and its hash. Pure; the reads
(selectors) and the writes (services) both build on it."""

import hashlib

LIVE_PREFIX = "mk_live_"
TEST_PREFIX = "mk_test_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
