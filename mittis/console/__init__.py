"""The staff console: the Django admin's site, whose front page is the dashboard of every app. Above the apps,
like urls.py."""
