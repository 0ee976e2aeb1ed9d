"""Use cases: what the entry points (api, cli, web, workers) do, one function per action.

An entry point parses its input, calls one service function with a session (or sessionmaker)
and renders the result; it never reaches into ``moderation.db.repositories`` itself. Services
compose repositories (which return plain dataclasses) and the pure domain modules, and own
the transaction's content: validate, write, audit-log.
"""
