"""The gallery's photos: the images bundled with thumbsvc (thumbsvc/samples), as model instances.

A real project would query them (``Photo.objects.all()``); building them here keeps the
example free of a database and migrations. Their sizes are what ``width_field`` and
``height_field`` would hold, so the tags write exact width/height attributes; their
ThumbHashes are what ``thumbsvc placeholders thumbsvc/samples`` prints (a project stores them
at upload time with ``thumbsvc.placeholders.compute``).
"""

from gallery.models import Photo


def all_photos() -> list[Photo]:
    return [
        Photo(
            title="A cat asleep on a red chair",
            image="cat.jpg",
            width=1000,
            height=748,
            focal_x=0.8,
            focal_y=0.5,
            thumbhash="2WgGDYbL/blNTouIaBiXZydsn1f2",
        ),
        Photo(
            title='"Craft beer" & a smile',
            image="craft-beer.jpg",
            width=1000,
            height=667,
            focal_x=0.52,
            focal_y=0.3,
            thumbhash="VhgGFYRgOLiXdomhdnqneYp4r4f3",
        ),
        Photo(
            title="A shop in Japan, at night",
            image="japanese-shop.jpg",
            width=1000,
            height=668,
            thumbhash="SfgFDYQFOmhvlIeFZploh2dmcDoH",
        ),
        Photo(title="A photo whose file is missing from the record", image=""),
    ]
