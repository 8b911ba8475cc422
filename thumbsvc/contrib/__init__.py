"""Integrations with web frameworks: Django (``thumbsvc.contrib.django``) and Jinja2 (``thumbsvc.contrib.jinja2``).

They only compute and sign URLs with ``thumbsvc.client.URLSigner``; the core never imports them.
"""
