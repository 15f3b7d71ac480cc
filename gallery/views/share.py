"""What anyone holding a share link sees, without an account: a read-only gallery, as the
link's owner set it up.

Only what the owner chose to show goes out: the gallery's name, its completed images and,
unless the link hides them, their prompts; never the owner's name or e-mail, the link's
label, or failed generations. Every URL under /s/<token>/ comes through one door:

- an unknown token gets Darkroom's 404 page; a revoked or expired link a page saying it has
  ended (410), from every one of its URLs;
- a link with a password shows only its password form (one field, `password`) until this
  browser session has given it; wrong guesses are throttled per link and address, and
  nothing of the gallery, its Open Graph preview included, goes out before;
- a page (the gallery, an image) takes one of the link's views the first time a browser
  session opens it (ShareLink.take_view, one conditional UPDATE, so a limit is exact);
  that session keeps seeing the link's pages and files, and counts no more. Once every
  view is used, other visitors get a 404 until the owner raises the limit;
- a HEAD and a GET from a chat app's link unfurler (UNFURLERS) get the preview (the Open
  Graph tags) and never use a view;
- with downloads off, the original, download and zip URLs answer 404 and pages show the
  display rendition (never the original).

The owner's preview of a link (gallery/views/galleries.py) renders the same pages through
`Sharing` without a token: the owner's own media URLs, the link's settings applied.
"""

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps

from django import forms
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.crypto import constant_time_compare
from django.views.decorators.http import require_http_methods

from gallery import throttles
from gallery.models import ShareLink, display_of
from gallery.proxy import client_address
from gallery.views.pictures import picture_of

SHARE_PAGE_SIZE = 24
# Chat and social previews fetch og:image themselves and give up on large files (X: 5 MB).
PREVIEW_MAX_BYTES = 5 * 1024 * 1024
# Wrong passwords for one link from one address, before that address waits.
WRONG_SHARE_PASSWORDS = throttles.Rule("share-password", limit=5, window=timedelta(minutes=15))

# The link unfurlers of the apps people paste links into, by their user agents: Slack
# (Slackbot-LinkExpanding, Slack-ImgProxy), Teams (SkypeUriPreview, MicrosoftPreview),
# Discord, WhatsApp, iMessage (which sends "facebookexternalhit/1.1 Facebot Twitterbot/1.0"),
# X (Twitterbot), Facebook, LinkedIn, Telegram. Only their fetchers: the apps' own in-app
# browsers (FBAN, LinkedInApp, Teams/...) are people, and are counted.
UNFURLERS = re.compile(
    r"Slackbot|Slack-ImgProxy|SkypeUriPreview|MicrosoftPreview|Discordbot|WhatsApp/"
    r"|facebookexternalhit|Facebot|Twitterbot|LinkedInBot|TelegramBot",
    re.IGNORECASE,
)

# What a browser session keeps about the links it opened.
UNLOCKED = "share_unlocked"  # {link id: ShareLink.unlock_marker()}
COUNTED = "share_counted"  # [link ids whose view this session used]


class SharePasswordForm(forms.Form):
    password = forms.CharField(
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
        error_messages={"required": "Type the password you were given with the link."},
    )


class Refused(Exception):
    """A visitor's request answered by `response` instead of what it asked for."""

    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response


def visitor_door(view):
    """A view behind a share token: its Refused answers become the response."""

    @wraps(view)
    def door(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except Refused as refused:
            return refused.response

    return door


def is_link_preview(request):
    """A HEAD, or a chat app fetching the link to unfurl it: served the preview, never a view."""
    return request.method == "HEAD" or bool(UNFURLERS.search(request.headers.get("User-Agent", "")))


# -- the door ------------------------------------------------------------------------------


def open_link(request, token):
    """The link `token` opens, unless it is unknown (404) or has ended (410)."""
    link = ShareLink.objects.select_related("gallery").with_token(token)
    if link is None:
        raise Refused(_notice(request, "unknown", status=404))
    if link.is_ended:
        raise Refused(_notice(request, "ended", status=410, link=link))
    return link


def is_unlocked(request, link):
    if not link.has_password:
        return True
    marker = request.session.get(UNLOCKED, {}).get(str(link.pk), "")
    return constant_time_compare(marker, link.unlock_marker())


def _is_counted(request, link):
    return link.pk in request.session.get(COUNTED, [])


def _remember(request, key, link, value=None):
    if value is None:
        request.session[key] = [*request.session.get(key, []), link.pk]
    else:
        request.session[key] = {**request.session.get(key, {}), str(link.pk): value}


def visit(request, token, image_pk=None):
    """The link, for a page of it (the gallery, or its image `image_pk`), once the visitor
    may see it: (link, preview_only). Counts the visitor's view."""
    link = open_link(request, token)
    if not is_unlocked(request, link):
        raise Refused(_locked_page(request, link, SharePasswordForm()))
    if image_pk is not None and not link.images().filter(pk=image_pk).exists():
        raise Http404("No such image behind this link")  # and no view used on it
    if is_link_preview(request):
        if link.is_used_up:
            raise Refused(_notice(request, "used_up", status=404))
        return link, True
    if _is_counted(request, link):
        link.record_return()
    elif link.take_view():
        _remember(request, COUNTED, link)
    else:
        raise Refused(_notice(request, "used_up", status=404))
    return link, False


def link_for_files(request, token, *, download=False):
    """The link, for one of its files (`download`: an original, a download or the zip)."""
    link = open_link(request, token)
    if not is_unlocked(request, link):
        raise Http404("This link needs its password first")
    if download and not link.allow_downloads:
        raise Http404("This link does not allow downloads")
    if link.is_used_up and not _is_counted(request, link):
        raise Http404("This link has no views left")
    return link


def unlock(request, token):
    """The password form's POST: right, and this browser session may see the link."""
    link = open_link(request, token)
    if is_unlocked(request, link):
        return redirect(request.path)
    key = f"{link.pk}:{client_address(request)}"
    if refusal := throttles.refusal_for(WRONG_SHARE_PASSWORDS, key):
        return _throttled(request, link, refusal)
    form = SharePasswordForm(request.POST)
    if form.is_valid() and link.check_password(form.cleaned_data["password"]):
        throttles.clear(WRONG_SHARE_PASSWORDS, key)
        request.session.cycle_key()  # a session planted before can't ride on the unlock
        _remember(request, UNLOCKED, link, link.unlock_marker())
        return redirect(request.path)
    if refusal := throttles.take(WRONG_SHARE_PASSWORDS, key):
        return _throttled(request, link, refusal)
    if form.is_valid():
        form.add_error("password", "That is not the password of this link. Check it and try again.")
    return _locked_page(request, link, form)


def _throttled(request, link, refusal):
    minutes = f"{refusal.minutes} minute{'s' if refusal.minutes != 1 else ''}"
    refused = f"Too many wrong passwords from your address: try again in {minutes}."
    page = _locked_page(request, link, SharePasswordForm(), refused=refused)
    return throttles.retry_after_response(page, refusal)


# -- what is shown -------------------------------------------------------------------------


def shared_images(link):
    """The link's images, newest generation first, as the studio shows them."""
    return link.images().select_related("generation", "display")


@dataclass(frozen=True)
class SharedImage:
    """One image as a shared page shows it, with the link's settings applied."""

    image: object
    page_url: str
    picture: object  # views.pictures.Picture
    alt: str
    prompt: str  # empty when the link hides prompts
    download_url: str  # empty when the link allows no downloads


@dataclass(frozen=True)
class Sharing:
    """A shared page's URLs: a visitor's through the token, or (token None) the owner's
    preview through the link's id and the owner's own media URLs."""

    link: ShareLink
    token: str | None = None

    @property
    def is_preview(self):
        return self.token is None

    @property
    def gallery_url(self):
        if self.is_preview:
            return reverse("sharelink_preview", args=[self.link.pk])
        return reverse("share_gallery", args=[self.token])

    def page_url(self, image):
        if self.is_preview:
            return reverse("sharelink_preview_image", args=[self.link.pk, image.pk])
        return reverse("share_image", args=[self.token, image.pk])

    def file_url(self, kind, image):
        if self.is_preview:
            return reverse(f"image_{kind}", args=[image.pk])
        return reverse(f"share_image_{kind}", args=[self.token, image.pk])

    @property
    def zip_url(self):
        if not self.link.allow_downloads:
            return ""
        if self.is_preview:
            return reverse("gallery_zip", args=[self.link.gallery_id])
        return reverse("share_zip", args=[self.token])

    def shown(self, image, alt):
        """`image` as the page shows it; `alt` describes it where prompts are hidden."""
        link = self.link
        prompt = image.generation.prompt if link.show_prompts else ""
        return SharedImage(
            image=image,
            page_url=self.page_url(image),
            picture=picture_of(
                image,
                lambda kind: self.file_url(kind, image),
                original_allowed=link.allow_downloads,
            ),
            alt=_truncate(prompt, 200) if prompt else alt,
            prompt=prompt,
            download_url=self.file_url("download", image) if link.allow_downloads else "",
        )

    def preview_image_url(self, request, image):
        """og:image: the original where previews take it and the link allows it, else the
        display rendition (or the thumbnail, for an image that has none yet)."""
        if self.link.allow_downloads and image.size_bytes <= PREVIEW_MAX_BYTES:
            kind = "original"
        else:
            kind = "display" if display_of(image) is not None else "thumbnail"
        return request.build_absolute_uri(self.file_url(kind, image))


def _truncate(text, length):
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def _render_shared(request, template, context, status=200):
    response = render(request, template, context, status=status)
    # A link is for the people it was sent to, not for search engines or shared caches.
    response["X-Robots-Tag"] = "noindex, nofollow"
    patch_cache_control(response, private=True, no_cache=True)
    return response


def _notice(request, reason, *, status, link=None):
    """Unknown (404), ended (410) or used up (404): in Darkroom's look, nothing of the
    gallery."""
    context = {"reason": reason, "link": link}
    return _render_shared(request, "gallery/share_notice.html", context, status=status)


# What a protected link's preview says: nothing of the gallery, not even its name.
LOCKED_PREVIEW = {
    "title": "Protected link",
    "description": "This Darkroom link is protected by a password.",
}


def _locked_page(request, link, form, refused=""):
    context = {"form": form, "refused": refused, "locked_og": LOCKED_PREVIEW}
    return _render_shared(request, "gallery/share_locked.html", context)


def gallery_page(request, sharing, *, preview_only=False):
    link = sharing.link
    images = shared_images(link)
    page = Paginator(images, SHARE_PAGE_SIZE).get_page(request.GET.get("page"))
    count = page.paginator.count
    cover = images.first()
    items = [
        sharing.shown(image, alt=f"Image {page.start_index() + offset}")
        for offset, image in enumerate(page)
    ]
    description = f"{count} image{'s' if count != 1 else ''} made with Darkroom"
    context = {
        "sharing": sharing,
        "link": link,
        "gallery": link.gallery,
        "page": page,
        "items": items,
        "preview_only": preview_only,
        "og": {
            "title": link.gallery.name,
            "description": description,
            "url": request.build_absolute_uri(sharing.gallery_url),
            "image": sharing.preview_image_url(request, cover) if cover else "",
            "image_alt": _cover_alt(link, cover),
        },
        "description": description,
    }
    return _render_shared(request, "gallery/share_gallery.html", context)


def image_page(request, sharing, pk, *, preview_only=False):
    link = sharing.link
    image = get_object_or_404(shared_images(link), pk=pk)
    item = sharing.shown(image, alt=f"An image from {link.gallery.name}")
    context = {
        "sharing": sharing,
        "link": link,
        "gallery": link.gallery,
        "item": item,
        "preview_only": preview_only,
        "og": {
            "title": link.gallery.name,
            "description": item.prompt or f"An image from {link.gallery.name}, made with Darkroom",
            "url": request.build_absolute_uri(sharing.page_url(image)),
            "image": sharing.preview_image_url(request, image),
            "image_alt": item.alt,
        },
    }
    return _render_shared(request, "gallery/share_image.html", context)


def _cover_alt(link, cover):
    if cover is None:
        return ""
    if link.show_prompts:
        return _truncate(cover.generation.prompt, 200)
    return f"An image from {link.gallery.name}"


# -- the visitor's views -------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@visitor_door
def share_gallery(request, token):
    if request.method == "POST":
        return unlock(request, token)
    link, preview_only = visit(request, token)
    return gallery_page(request, Sharing(link, token), preview_only=preview_only)


@require_http_methods(["GET", "HEAD", "POST"])
@visitor_door
def share_image(request, token, pk):
    if request.method == "POST":
        return unlock(request, token)
    link, preview_only = visit(request, token, image_pk=pk)
    return image_page(request, Sharing(link, token), pk, preview_only=preview_only)
