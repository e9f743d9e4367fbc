"""Celery settings for every trainq process, derived from trainq's one Settings object.

Edit trainq's settings (``TRAINQ_*`` variables), not this file: it only publishes
:func:`trainq.celery_app.celery_config` under the names Celery reads.
"""

from trainq.celery_app import celery_config
from trainq.config import get_settings

globals().update(celery_config(get_settings()))
