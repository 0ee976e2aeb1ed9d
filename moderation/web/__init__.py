"""The ops dashboard: server-rendered pages (FastAPI + Jinja2) over the SQL views."""

__all__: list[str] = []
