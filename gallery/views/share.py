"""What anyone holding a live share link sees, without an account: a read-only gallery.

Only what the owner chose to show goes out: the gallery's name, its completed images and
their prompts; never the owner's name or e-mail, the link's label, or failed generations.
A revoked, expired or unknown token is a plain 404, the same answer for all three.
"""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from gallery.models import ShareLink

SHARE_PAGE_SIZE = 24
# Chat and social previews fetch og:image themselves and give up on large files (X: 5 MB).
PREVIEW_MAX_BYTES = 5 * 1024 * 1024


def live_link_or_404(token):
    return get_object_or_404(ShareLink.objects.live().select_related("gallery"), token=token)


def shared_images(link):
    """The link's images, newest generation first, as the studio shows them."""
    return (
        link.images()
        .select_related("generation")
        .order_by("-generation__created_at", "-generation_id", "index")
    )


def _preview_url(request, link, image):
    """An absolute URL for og:image: the original where previews can take it."""
    name = (
        "share_image_original" if image.size_bytes <= PREVIEW_MAX_BYTES else "share_image_thumbnail"
    )
    return request.build_absolute_uri(reverse(name, args=[link.token, image.pk]))


def _render_shared(request, template, context):
    response = render(request, template, context)
    # A link is for the people it was sent to, not for search engines.
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_safe
def share_gallery(request, token):
    link = live_link_or_404(token)
    images = shared_images(link)
    page = Paginator(images, SHARE_PAGE_SIZE).get_page(request.GET.get("page"))
    if request.method == "GET":  # a preview bot's HEAD is not a visit
        link.record_view()
    cover = images.first()
    count = page.paginator.count
    return _render_shared(
        request,
        "gallery/share_gallery.html",
        {
            "link": link,
            "gallery": link.gallery,
            "page": page,
            "cover": cover,
            "preview_url": _preview_url(request, link, cover) if cover else "",
            "description": f"{count} image{'s' if count != 1 else ''} made with Darkroom",
            "page_url": request.build_absolute_uri(link.get_absolute_url()),
        },
    )


@require_safe
def share_image(request, token, pk):
    link = live_link_or_404(token)
    image = get_object_or_404(shared_images(link), pk=pk)
    return _render_shared(
        request,
        "gallery/share_image.html",
        {
            "link": link,
            "gallery": link.gallery,
            "image": image,
            "preview_url": _preview_url(request, link, image),
            "page_url": request.build_absolute_uri(request.path),
        },
    )
