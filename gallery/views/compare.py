"""Compare two images: side by side, or one over the other with a slider, with their
parameters and prompts, what differs marked (gallery/compare.py).

Reached from the select bar's Compare (two cards, or one card of several images) or by
URL: `/compare/?a=<image>&b=<image>`. Each image goes through the same door as its detail
page (access.image_for_user): one the caller may not see, or in the trash, is a 404.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from gallery.compare import parameter_rows, prompt_diff
from gallery.views.access import image_for_user
from gallery.views.pictures import picture_of


def _image(request, name):
    value = request.GET.get(name, "")
    if not value.isdigit():
        raise Http404("Name two images to compare")
    image = image_for_user(request.user, int(value))
    picture = picture_of(
        image, lambda kind: reverse(f"image_{kind}", args=[image.pk]), original_allowed=True
    )
    return image, picture


@require_GET
@login_required
def compare(request):
    (left, left_picture), (right, right_picture) = _image(request, "a"), _image(request, "b")
    left_prompt, right_prompt = prompt_diff(left.generation.prompt, right.generation.prompt)
    rows = parameter_rows(left, right)
    context = {
        "sides": [
            {"key": "a", "image": left, "picture": left_picture, "prompt": left_prompt},
            {"key": "b", "image": right, "picture": right_picture, "prompt": right_prompt},
        ],
        "rows": rows,
        "differences": sum(row.differs for row in rows),
        "same_prompt": left.generation.prompt == right.generation.prompt,
        "swap_url": f"{reverse('compare')}?a={right.pk}&b={left.pk}",
    }
    return render(request, "gallery/compare.html", context)
