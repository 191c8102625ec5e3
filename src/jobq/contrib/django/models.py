"""No models: jobq's tables are jobq's own (its numbered migrations, not Django's).

The module exists because Django sends `post_migrate` only to apps that have
one, and `manage.py migrate` applying jobq's migrations too is what apps.py
hooks there.
"""
