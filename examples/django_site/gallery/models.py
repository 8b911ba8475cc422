"""A photo as a real project stores it: an image field that records its size, a focal point and a placeholder.

``thumbhash`` is computed once, when the image is uploaded (``thumbsvc.placeholders.compute``)
or backfilled (``manage.py thumbsvc_placeholders gallery.Photo image thumbhash``); pages then
paint it while the thumbnail loads, without reading the file.
"""

from django.db import models


class Photo(models.Model):
    title = models.CharField(max_length=200)
    image = models.ImageField(width_field="width", height_field="height")
    width = models.PositiveIntegerField(null=True)
    height = models.PositiveIntegerField(null=True)
    focal_x = models.FloatField(null=True, blank=True)
    focal_y = models.FloatField(null=True, blank=True)
    thumbhash = models.CharField(max_length=64, blank=True)

    @property
    def focal_point(self) -> tuple[float, float] | None:
        if self.focal_x is None or self.focal_y is None:
            return None
        return (self.focal_x, self.focal_y)
