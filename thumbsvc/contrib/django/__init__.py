"""Django integration: add ``"thumbsvc.contrib.django"`` to ``INSTALLED_APPS``, set
``THUMBSVC_KEY`` and ``THUMBSVC_BASE_URL``, then ``{% load thumbsvc %}`` in templates.

See docs/django.md for the tags and settings.
"""
