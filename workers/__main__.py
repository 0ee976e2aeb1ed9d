"""``python -m workers worker|beat …``: run Celery with the app built from the settings.

The launcher (``moderation worker``) starts one of these per GPU; there is no module-level
Celery app, so the Celery command line cannot be pointed at one with ``-A``.
"""

from __future__ import annotations

import sys

from moderation.config import get_settings

from .celery_app import make_celery

__all__ = ["main"]


def main(argv: list[str]) -> None:
    app = make_celery(get_settings())
    sys.exit(app.start(argv=argv) or 0)


if __name__ == "__main__":
    main(sys.argv[1:])
