__version__ = "0.1.0"

# The API version this release was written against, sent as `Mittis-Version` on every request so that the
# answers' shapes are the ones these models describe. A client can pin another (`Mittis(api_version=...)`).
API_VERSION = "2026-12-07"
