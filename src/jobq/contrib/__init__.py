"""Optional integrations with other frameworks, each behind its own extra.

Nothing in jobq's core imports a module from here: each one imports its
framework (`jobq.contrib.django` needs `jobq[django]`), and the import-linter
contract in pyproject.toml keeps it that way. They sit above the library
(`jobq.app`, `jobq.client`) and may use any of it.
"""
