"""Settings of the example gallery: the thumbsvc app and its two required settings, plus presets.

The key must be the one thumbsvc verifies with (its own THUMBSVC_KEY). GALLERY_* variables
override the defaults here; they are not THUMBSVC_* names, which the service itself would
refuse as unknown settings if they were exported in its shell.
"""

import os

DEBUG = True
SECRET_KEY = "example-gallery-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "gallery_site.urls"
INSTALLED_APPS = ["django.contrib.staticfiles", "thumbsvc.contrib.django", "gallery"]
STATIC_URL = "static/"  # thumbsvc/thumbhash.js, the placeholder painter
# The gallery reads no database: its photos are listed in gallery/photos.py.
DATABASES: dict[str, dict[str, str]] = {}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# thumbsvc: the two settings every project needs ...
THUMBSVC_KEY = os.environ.get("GALLERY_THUMBSVC_KEY", "example-gallery-key")
THUMBSVC_BASE_URL = os.environ.get("GALLERY_THUMBSVC_URL", "http://127.0.0.1:8001")
# ... and the optional ones.
THUMBSVC_DEFAULTS = {"quality": 80}
THUMBSVC_PRESETS = {
    "card": {"width": 320, "height": 240, "fit": "cover", "widths": [320, 480, 640]},
    "square": {"width": 160, "height": 160, "fit": "cover"},
}
THUMBSVC_PLACEHOLDER = "craft-beer.jpg"

# The same gallery from a private S3 bucket (docs/django.md, "Files in S3"): GALLERY_S3_BUCKET=media-bucket
# stores the image fields with django-storages' S3 backend under media/, and the tags make
# s3://media-bucket/media/<name> sources from the field names alone. Neither the page nor the tags ever
# call the storage: thumbsvc reads the bucket (THUMBSVC_ALLOWED_SOURCES=s3://media-bucket/media/).
GALLERY_S3_BUCKET = os.environ.get("GALLERY_S3_BUCKET", "")
if GALLERY_S3_BUCKET:
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": GALLERY_S3_BUCKET,
                "location": "media",
                "default_acl": "private",
                "querystring_auth": True,
                # e.g. moto or MinIO on loopback; credentials come from the AWS chain, as for thumbsvc.
                "endpoint_url": os.environ.get("GALLERY_S3_ENDPOINT") or None,
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    THUMBSVC_SOURCE_PREFIX = f"s3://{GALLERY_S3_BUCKET}/media/"
    THUMBSVC_PLACEHOLDER = THUMBSVC_SOURCE_PREFIX + "craft-beer.jpg"
