"""Tests of jobq.contrib.django, with a small Django project (`project/`) on the real PostgreSQL."""
