"""The gallery's photos: the images bundled with thumbsvc (thumbsvc/samples), as model instances.

A real project would query them (``Photo.objects.all()``); building them here keeps the
example free of a database and migrations. Their sizes are what ``width_field`` and
``height_field`` would hold, so the tags write exact width/height attributes.
"""

from gallery.models import Photo


def all_photos() -> list[Photo]:
    return [
        Photo(title="A cat asleep on a red chair", image="cat.jpg", width=1000, height=748, focal_x=0.8, focal_y=0.5),
        Photo(
            title='"Craft beer" & a smile', image="craft-beer.jpg", width=1000, height=667, focal_x=0.52, focal_y=0.3
        ),
        Photo(title="A shop in Japan, at night", image="japanese-shop.jpg", width=1000, height=668),
        Photo(title="A photo whose file is missing from the record", image=""),
    ]
