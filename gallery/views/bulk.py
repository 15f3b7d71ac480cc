"""The studio's select bar: one request acts on every selected card (gallery/bulk.py).

The bar is a plain form (templates/gallery/_bulk_bar.html); each card's checkbox belongs to
it (`form="bulk-form"`, `name="g"`), so without JavaScript it posts like any form and the
browser comes back to the page with a toast saying what was done. With htmx the answer
swaps, out of band, each selected card still in the page's view (its star, say), removes
those that left it (trashed, moved out of the gallery being viewed), and shows the toast.
"""

from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from gallery import bulk
from gallery.forms import BulkActionForm, StudioFilterForm
from gallery.models import Generation, Image
from gallery.views import media, trash


@require_POST
@login_required
def generation_bulk(request):
    form = BulkActionForm(request.POST, user=request.user)
    pks = trash.selected_pks(request)
    if request.POST.get("gallery") and form.has_error("gallery"):
        raise Http404("No such gallery of yours")  # as the single card's move answers
    if not pks or not form.is_valid():
        return _answer(request, "Select at least one image first.", pks=[])
    # One query for all of them, with what the caller may do to each.
    generations = list(Generation.objects.visible_to(request.user).filter(pk__in=pks))
    if not generations:
        raise Http404("None of those is yours to see")
    action, gallery = form.cleaned_data["action"], form.cleaned_data.get("gallery")
    if action == "download":
        return media.selection_zip(request.user, generations)
    if action == "compare":
        return _compare(request, generations)
    try:
        if action == "move":
            outcome = bulk.move(generations, gallery)
            message = outcome.summary("Moved", f" to “{gallery.name}”")
        elif action == "trash":
            outcome = bulk.trash(generations)
            message = outcome.summary("Moved", " to the trash")
        else:
            outcome = bulk.favourite(request.user, generations, action == "favourite")
            added = action == "favourite"
            message = outcome.summary(
                "Added" if added else "Removed", f" {'to' if added else 'from'} your favourites"
            )
    except bulk.NothingAllowed:
        raise Http404("None of those may be changed by you") from None
    if missing := len(pks) - len(generations):
        message += f" {missing} could not be found (deleted meanwhile?)."
    undo = [g.pk for g in outcome.done] if action == "trash" else []
    return _answer(request, message, pks=pks, undo=undo)


def _compare(request, generations):
    """To the Compare page: the first image of each of two cards, or the first two of one
    card of several images."""
    images = Image.objects.shown().filter(generation__in=[g.pk for g in generations])
    by_card = {}
    for image in images.newest_first():
        by_card.setdefault(image.generation_id, []).append(image)
    if len(by_card) == 2:
        pair = [found[0] for found in by_card.values()]
    elif len(by_card) == 1 and len(found := next(iter(by_card.values()))) > 1:
        pair = found[:2]
    else:
        message = "Pick two images to compare: tick two cards, or one card of several images."
        return _answer(request, message, pks=[])
    return redirect(f"{reverse('compare')}?a={pair[0].pk}&b={pair[1].pk}")


def _answer(request, message, *, pks, undo=()):
    if not request.htmx:
        trash.toast(request, message, undo=undo)
        return redirect(trash.next_url(request, "studio"))
    still, gone = _cards_after(request, pks)
    cards = render_to_string(
        "gallery/studio.html#updates", {"changed": still, "gone": gone}, request=request
    )
    return HttpResponse(cards + trash.toast(request, message, undo=undo, oob=True))


def _cards_after(request, pks):
    """The selected cards still in the view the page shows (its query string, from the
    form's `next`), to swap in again; and the pks of those no longer in it, to remove."""
    if not pks:
        return [], []
    query = QueryDict(urlsplit(trash.next_url(request, "studio")).query)
    filters = StudioFilterForm(query, user=request.user)
    filters.is_valid()
    visible = Generation.objects.cards_for(request.user)
    still = list(filters.apply(visible).filter(pk__in=pks).with_images())
    kept = {generation.pk for generation in still}
    return still, [pk for pk in pks if pk not in kept]
