"""The galleries page: create, rename and delete galleries, manage their share links, and
move generations between galleries.

Forms on a gallery's card post with htmx and get the re-rendered card back (the
`gallery_card` partial of galleries.html); without JavaScript they post normally and the
view redirects to the page, or renders it with the form's errors.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from gallery.forms import GalleryDeleteForm, GalleryForm, MoveGenerationForm, ShareLinkForm
from gallery.models import Gallery, Generation, Image
from gallery.views.access import gallery_for_user, generation_for_user, share_link_for_user


def _galleries_with_counts(user):
    newest_image = (
        Image.objects.filter(
            generation__gallery=OuterRef("pk"),
            generation__status=Generation.Status.COMPLETED,
        )
        .order_by("-generation__created_at", "-generation_id", "index")
        .values("pk")[:1]
    )
    return (
        Gallery.objects.for_user(user)
        .annotate(
            generation_count=Count("generations", distinct=True),
            image_count=Count("generations__images", distinct=True),
            cover_image_id=Subquery(newest_image),
        )
        .prefetch_related("share_links")
    )


def _form_ids(gallery):
    # Every card holds the same forms: prefix their element ids so labels stay unique.
    return f"gallery-{gallery.pk}-%s"


def _card(gallery, *, rename_form=None, share_form=None, open_panel=""):
    ids = _form_ids(gallery)
    return {
        "gallery": gallery,
        "rename_form": rename_form or GalleryForm(instance=gallery, auto_id=ids),
        "share_form": share_form or ShareLinkForm(auto_id=ids),
        "delete_form": None if gallery.is_default else GalleryDeleteForm(auto_id=ids),
        "open_panel": open_panel,
    }


def _render_page(request, *, create_form=None, card=None):
    cards = [
        card if card and card["gallery"].pk == gallery.pk else _card(gallery)
        for gallery in _galleries_with_counts(request.user)
    ]
    create_form = create_form or GalleryForm(instance=Gallery(owner=request.user))
    return render(request, "gallery/galleries.html", {"cards": cards, "create_form": create_form})


def _respond_with_card(request, gallery, **card_options):
    """htmx gets the card again; a plain post gets the page (with errors) or a redirect."""
    has_errors = any(
        form is not None and form.errors
        for form in (card_options.get("rename_form"), card_options.get("share_form"))
    )
    if request.htmx or has_errors:
        card = _card(_galleries_with_counts(request.user).get(pk=gallery.pk), **card_options)
        if request.htmx:
            return render(request, "gallery/galleries.html#gallery_card", {"card": card})
        return _render_page(request, card=card)
    return redirect(f"{reverse('gallery_list')}#gallery-{gallery.pk}")


@require_GET
@login_required
def gallery_list(request):
    return _render_page(request)


@require_POST
@login_required
def gallery_create(request):
    form = GalleryForm(request.POST, instance=Gallery(owner=request.user))
    if not form.is_valid():
        return _render_page(request, create_form=form)
    gallery = form.save()
    messages.success(request, f"Created the gallery “{gallery.name}”.")
    return redirect(f"{reverse('gallery_list')}#gallery-{gallery.pk}")


@require_POST
@login_required
def gallery_rename(request, pk):
    gallery = gallery_for_user(request.user, pk)
    form = GalleryForm(request.POST, instance=gallery, auto_id=_form_ids(gallery))
    if not form.is_valid():
        return _respond_with_card(request, gallery, rename_form=form, open_panel="rename")
    form.save()
    return _respond_with_card(request, gallery)


@require_POST
@login_required
def gallery_delete(request, pk):
    gallery = gallery_for_user(request.user, pk)
    if gallery.is_default:
        messages.error(request, f"“{gallery.name}” is your default gallery: it can't be deleted.")
        return redirect("gallery_list")
    form = GalleryDeleteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose whether to keep or delete the gallery's images.")
        return redirect(f"{reverse('gallery_list')}#gallery-{gallery.pk}")
    gallery.remove(keep_images=form.keep_images)
    if form.keep_images:
        default = Gallery.default_for(request.user)
        messages.success(request, f"Deleted “{gallery.name}”; its images are in “{default}”.")
    else:
        messages.success(request, f"Deleted “{gallery.name}” and its images.")
    return redirect("gallery_list")


@require_POST
@login_required
def sharelink_create(request, pk):
    gallery = gallery_for_user(request.user, pk)
    form = ShareLinkForm(request.POST, auto_id=_form_ids(gallery))
    if form.is_valid():
        link = form.save(commit=False)
        link.gallery = gallery
        link.save()
        if not request.htmx:
            messages.success(request, f"New share link for “{gallery.name}”: copy it below.")
        return _respond_with_card(request, gallery, open_panel="share")
    return _respond_with_card(request, gallery, share_form=form, open_panel="share")


@require_POST
@login_required
def sharelink_revoke(request, pk):
    link = share_link_for_user(request.user, pk)
    link.revoke()
    return _respond_with_card(request, link.gallery, open_panel="share")


@require_POST
@login_required
def generation_move(request, pk):
    generation = generation_for_user(request.user, pk)
    form = MoveGenerationForm(request.POST, owner=request.user)
    if not form.is_valid():
        raise Http404("No such gallery of yours")
    generation.gallery = form.cleaned_data["gallery"]
    # Only this column: the pipeline may be changing the status at the same moment.
    generation.save(update_fields=["gallery", "updated_at"])
    next_url = request.POST.get("next", "")
    if request.htmx:
        return render(
            request,
            "gallery/_move_form.html",
            {
                "generation": generation,
                "galleries": Gallery.objects.for_user(request.user),
                "moved": True,
                "next": next_url,
            },
        )
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = f"{reverse('studio')}?gallery={generation.gallery_id}"
    return redirect(next_url)
