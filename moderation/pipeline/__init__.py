"""The scoring pipeline body shared by the Celery worker and ``moderation scan``."""
