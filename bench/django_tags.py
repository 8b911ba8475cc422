"""Render a Django template holding 100 thumbnail tags; print the median time per page.

    python -m bench.django_tags [--runs 30] [--tags 100]

Each page is a ``{% for %}`` over model instances with image fields (sizes stored in
``width_field``/``height_field``, as a real gallery has them), one tag per photo, for each
of the four tags. It also counts database queries and storage calls during the renders
(both must be zero). The template is compiled once, as Django's cached loader does. The CPU
time (this process only) is printed too: on a shared machine it moves less than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench",
    INSTALLED_APPS=["thumbsvc.contrib.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    THUMBSVC_KEY="bench-key",
    THUMBSVC_BASE_URL="https://img.example.com",
)
django.setup()

from django.core.files.storage import FileSystemStorage  # noqa: E402 - needs configured settings
from django.db import connection, models  # noqa: E402
from django.template import Context, Template  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

STORAGE_CALLS: list[str] = []


class CountingStorage(FileSystemStorage):
    def open(self, name: str, mode: str = "rb") -> Any:
        STORAGE_CALLS.append("open")
        return super().open(name, mode)

    def url(self, name: str | None) -> str:
        STORAGE_CALLS.append("url")
        return super().url(name)

    def exists(self, name: str) -> bool:
        STORAGE_CALLS.append("exists")
        return super().exists(name)


class Photo(models.Model):
    title = models.CharField(max_length=200)
    image = models.ImageField(storage=CountingStorage(), width_field="width", height_field="height")
    width = models.PositiveIntegerField(null=True)
    height = models.PositiveIntegerField(null=True)

    class Meta:
        app_label = "thumbsvc"


TAGS = {
    "thumbnail_url": '<img src="{% thumbnail_url p.image 300 200 fit="cover" %}" alt="">',
    "thumbnail_srcset": '<img srcset="{% thumbnail_srcset p.image 300 200 fit="cover" widths="300,600,900" %}">',
    "thumbnail_img": '{% thumbnail_img p.image 300 200 fit="cover" alt=p.title %}',
    "thumbnail_img contain": "{% thumbnail_img p.image 300 300 alt=p.title %}",
    "thumbnail_picture": '{% thumbnail_picture p.image 300 200 fit="cover" formats="avif,webp" alt=p.title %}',
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tags", type=int, default=100)
    args = parser.parse_args()
    photos = [
        Photo(title=f'Photo {i} "<{i}>"', image=f"photos/{i:04d}.jpg", width=4000 + i, height=3000)
        for i in range(args.tags)
    ]
    print(f"{args.tags} tags per page, median of {args.runs} renders (after 3 warm-up renders)")
    for name, tag in TAGS.items():
        template = Template("{% load thumbsvc %}{% for p in photos %}" + tag + "{% endfor %}")
        context = Context({"photos": photos})
        for _ in range(3):
            template.render(context)
        wall, cpu = [], []
        STORAGE_CALLS.clear()
        with CaptureQueriesContext(connection) as queries:
            for _ in range(args.runs):
                start, start_cpu = time.perf_counter(), time.process_time()
                page = template.render(context)
                cpu.append((time.process_time() - start_cpu) * 1000)
                wall.append((time.perf_counter() - start) * 1000)
        median = statistics.median(wall)
        print(
            f"  {name:22} median {median:6.2f} ms/page ({median * 1000 / args.tags:5.1f} us/tag), "
            f"min {min(wall):.2f}, max {max(wall):.2f}; CPU median {statistics.median(cpu):6.2f} ms; "
            f"{len(page) // 1024} KiB; queries {len(queries.captured_queries)}, storage calls {len(STORAGE_CALLS)}"
        )


if __name__ == "__main__":
    main()
