from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from gallery.photos import all_photos


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "gallery/index.html", {"photos": all_photos()})
