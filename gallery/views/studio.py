"""The studio: generate, watch generations live, browse and manage them, image detail.

templates/gallery/studio.html holds the page and every fragment htmx swaps (the form,
the gallery, a page of cards, one card, the live updates) as partials, so an updated
card, a "load more" page and the first render are the same markup. Which fragment an
htmx request gets is decided by the element it targets (HX-Target), as in django-htmx's
example project.

Without a gallery the studio shows what the caller made (in galleries they may still
see); with one, everything in that gallery, whoever made it. Live updates are one
request per page (`studio_updates`), whatever the number of cards: see its docstring.
"""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max, Q, prefetch_related_objects
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from gallery import changes, schedule, spend, tasks
from gallery.forms import GenerationForm, StudioFilterForm
from gallery.models import Gallery, Generation, Image, Role
from gallery.templatetags.studio import card_version
from gallery.views import trash
from gallery.views.access import (
    generation_for_user,
    generation_to_remove,
    generation_to_rerun,
    image_for_user,
)
from gallery.views.pictures import picture_of

# Cards per page: enough to fill a large screen twice, small enough to render fast.
PAGE_SIZE = 24
STUDIO = "gallery/studio.html"
# Live updates: the page's one update request is held until something it shows changes
# (gallery.changes) or settings.LIVE_HOLD_SECONDS pass; static/js/darkroom.js asks again at
# once, never sooner than gallery.schedule.LIVE_MIN_GAP_MS after its last request began.
# Every answer carries LIVE_HEADER, so the page can tell it from, say, the sign-in page.
LIVE_HEADER = "Darkroom-Live"
# At most this many cards an update request names (a page holds 24 per "load more").
LIVE_MAX_CARDS = 1000


# -- the studio page ------------------------------------------------------------------------


@require_GET
@login_required
def studio(request):
    target = request.htmx.target if request.htmx else None
    if target == "generate-form":  # "Use these settings": only the form is needed
        galleries = _visible_galleries(request)
        form = _compose_form(request, galleries)
        return _vary_on_htmx(
            render(request, f"{STUDIO}#generate-form", _with_price(form, galleries))
        )

    galleries = _visible_galleries(request)
    context = _gallery_context(request, galleries)
    if context["filters"].refuses_gallery():
        raise Http404("No such gallery, or it is not shared with you")
    if target == "load-more":  # more cards for a page that already asks for updates
        return _vary_on_htmx(render(request, f"{STUDIO}#grid-page", context))
    context["live"] = _live_config(request, context)
    if target == "gallery":
        template = f"{STUDIO}#gallery"
    else:
        template = STUDIO
        form = _compose_form(request, galleries, gallery=context["gallery"])
        context.update(_with_price(form, galleries))
    return _vary_on_htmx(render(request, template, context))


def _visible_galleries(request):
    """Every gallery the user may see, fetched once for the page's two gallery selects."""
    return list(Gallery.objects.visible_to(request.user).select_related("owner"))


def _view_generations(request, filters):
    """The cards of the view the query string asks for (see the module docstring)."""
    visible = Generation.objects.cards_for(request.user)
    return filters.apply(visible)


def _gallery_context(request, galleries):
    """One page of the view's generations, and what its live updates need."""
    filters = StudioFilterForm(request.GET, user=request.user)
    filters.is_valid()  # a bad value drops only that filter (cleaned_data keeps the rest)
    filters.fields["gallery"].offer(galleries)
    generations = _view_generations(request, filters)
    cursor = request.GET.get("before", "")
    if cursor.isdigit():
        generations = generations.older_than(int(cursor))
    # One more than a page tells whether another page exists, without a COUNT query.
    cards = list(generations.with_images()[: PAGE_SIZE + 1])
    more_url = None
    if len(cards) > PAGE_SIZE:
        cards = cards[:PAGE_SIZE]
        query = request.GET.copy()
        query.pop("use", None)
        query["before"] = cards[-1].pk
        more_url = f"{reverse('studio')}?{query.urlencode()}"
    gallery = filters.viewed_gallery
    return {
        "generations": cards,
        "more_url": more_url,
        "filters": filters,
        "filtering": filters.is_filtering(),
        "gallery": gallery,
        "members": list(gallery.members.select_related("user")) if gallery else [],
        # The select bar's "Move to" (templates/gallery/_bulk_bar.html).
        "move_targets": [g for g in galleries if g.role.can_contribute],
        "view": _view_of(request, filters, galleries),
    }


def _view_of(request, filters, galleries):
    """What the view holds, for the page and its script: its heading, its query (sent
    with Generate, so a new card shows only in a view it belongs to), the gallery the
    generate form follows (one the caller may add to) and whether others' galleries exist
    to see beside their own."""
    query = request.GET.copy()
    for name in ("use", "before"):
        query.pop(name, None)
    gallery = filters.viewed_gallery
    return {
        "label": filters.view_label(),
        "query": query.urlencode(),
        "value": filters.data.get("gallery", "") if filters.is_bound else "",
        "everything": filters.shows_everything,
        "generate_into": gallery.pk if gallery and gallery.role.can_contribute else "",
        "others_share": any(g.role is not Role.OWNER for g in galleries),
    }


def _live_config(request, context):
    """Where the page asks for its updates, which cards count as new (after `anchor`),
    whether it keeps asking while nothing is unfinished (a gallery someone else may add
    to), and how soon it may ask again (gallery.schedule)."""
    if request.GET.get("before", "").isdigit():  # an older page: the newest isn't on it
        view = _view_generations(request, context["filters"])
        newest = view.aggregate(newest=Max("pk"))["newest"]
    else:
        newest = max((card.pk for card in context["generations"]), default=0)
    gallery = context["gallery"]
    others_add = context["filters"].shows_everything or (
        gallery is not None
        and (
            not gallery.role.can_manage
            or any(member.role == Role.CONTRIBUTOR for member in context["members"])
        )
    )
    return {
        "url": f"{reverse('studio_updates')}?{context['view']['query']}",
        "anchor": newest or 0,
        # Keeps asking with nothing unfinished: others may add to this gallery.
        "others_add": others_add,
        "timing": {
            "min-gap-ms": schedule.LIVE_MIN_GAP_MS,
            "hidden-gap-ms": schedule.LIVE_HIDDEN_GAP_MS,
            "failure-ms": schedule.LIVE_FAILURE_MS,
            "max-backoff-ms": schedule.LIVE_MAX_BACKOFF_MS,
        },
    }


def _compose_form(request, galleries, *, gallery=None):
    """The generate form, filled from a past generation when asked (?use=<pk>)."""
    initial = {"gallery": gallery} if gallery and gallery.role.can_contribute else {}
    source = request.GET.get("use", "")
    if source.isdigit():
        past = generation_for_user(request.user, int(source))
        initial = past.provider_params()
        if past.role.can_contribute:  # a gallery they may add to: the same gallery again
            initial["gallery"] = past.gallery_id
    return _generation_form(request, galleries, initial=initial)


def _generation_form(request, galleries, *args, **kwargs):
    form = GenerationForm(*args, owner=request.user, **kwargs)
    form.fields["gallery"].offer(g for g in galleries if g.role.can_contribute)
    return form


def _vary_on_htmx(response):
    # The same URL answers with the page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


# -- generating -----------------------------------------------------------------------------


@require_POST
@login_required
def generate(request):
    form = _generation_form(request, [], request.POST)
    # A refusal (a limit it would break, or approval) joins the form's errors: nothing sent.
    if form.is_valid() and (generation := form.reserve()):
        tasks.enqueue_submit(generation)
        if not request.htmx:
            # The form comes back filled with these settings, as it does with htmx.
            return redirect(f"{reverse('studio')}?use={generation.pk}")
        # The form stays as it is, prompt and all, for a quick next try: only the new card
        # (to the top of the grid, joining the page's live updates, if the page's view
        # holds it; else a note that says where it went), the price and the month's usage
        # are sent, out of band. The card is the caller's own, just made.
        _as_seen_by_its_maker(generation)
        context = _with_price(form, [generation.gallery], generation=generation, is_new=True)
        context["in_view"] = _in_view(request, generation)
        response = render(request, f"{STUDIO}#generated", context)
        response["HX-Reswap"] = "none"
        return response
    galleries = _visible_galleries(request)
    form.fields["gallery"].offer(g for g in galleries if g.role.can_contribute)
    if request.htmx:
        return render(request, f"{STUDIO}#generate-form", _with_price(form, galleries))
    # Without JavaScript: the whole page again, errors beside their fields, nothing saved.
    context = _gallery_context(request, galleries)
    context["live"] = _live_config(request, context)
    return render(request, STUDIO, {**context, **_with_price(form, galleries)})


def _in_view(request, generation):
    """Whether the view the page shows (its query, which the page's script sends as
    `view`) holds this generation: a card only appears where a reload would show it."""
    if "view" not in request.POST:
        return True  # a page that doesn't say: as it always was
    filters = StudioFilterForm(QueryDict(request.POST["view"]), user=request.user)
    filters.is_valid()
    if filters.refuses_gallery():
        return False
    return (
        filters.apply(Generation.objects.visible_to(request.user)).filter(pk=generation.pk).exists()
    )


def _as_seen_by_its_maker(generation):
    """What Generation.objects.visible_to(maker) annotates, for one they just saved: they
    made it, in a gallery they may add to (the form's choice, with their role), unstarred."""
    generation.caller_is_maker = True
    generation.caller_favourite = False
    generation.caller_role = getattr(generation.gallery, "caller_role", Role.OWNER.value)
    return generation


@require_GET
@login_required
def generate_price(request):
    """The price of what the form asks for and what is left of each limit, computed here
    from the price table (never a copy in the page's script): the form asks again,
    with htmx, whenever a field changes."""
    form = _generation_form(request, [], request.GET)
    form.is_valid()  # the prompt may still be empty: only the priced fields matter here
    return render(request, f"{STUDIO}#price-figures", _with_price(form))


def _quote(form, galleries=()):
    """The price panel's figures for what `form` holds: what was posted where it is valid,
    else the field's initial value (a page's first render, "Use these settings").
    `galleries`, the page's own, spare a query for the default gallery."""
    cleaned = getattr(form, "cleaned_data", {})

    def value(name):
        if name in cleaned:
            return cleaned[name]
        return form.fields[name].initial if form.is_bound else form[name].value()

    gallery = value("gallery")
    if gallery is not None and not isinstance(gallery, Gallery):
        gallery = form.fields["gallery"].queryset.filter(pk=gallery).first()
    if gallery is None:
        mine = (g for g in galleries if g.is_default and g.owner_id == form.owner.pk)
        gallery = next(mine, None) or Gallery.default_for(form.owner)
    return spend.quote(
        form.owner,
        gallery,
        value("quality"),
        value("image_size"),
        int(value("num_images")),
        limits=getattr(form, "limits_after", None),  # a reservation just read them
    )


def _with_price(form, galleries=(), **context):
    """A template context holding the generate form and its price panel."""
    return {"form": form, "quote": _quote(form, galleries), **context}


@require_GET
@login_required
def studio_updates(request):
    """The page's one live-update request, whatever the number of cards on it, held until
    something it shows changed.

    The page names its unfinished cards with the version it shows (`w=<pk>:<version>`)
    and the cards it received since it was rendered (`k=<pk>`); `anchor` is the newest
    generation of the view when the page was rendered, `p` the page's own id, and the
    view's filters come as on the page (`release=1` with `p` only lets that page's request
    under way go, when it has cards to watch that the request does not name). The answer
    swaps, out of band, each named card that changed (a finished one no longer polls),
    removes those the caller may no longer see, and puts cards new to the view at the top.
    While there is nothing to change, the request waits for the cards' rows to change or a
    generation to be made (gallery.changes), up to LIVE_HOLD_SECONDS, then answers 204.
    A gallery the caller may no longer see is replaced by a note saying so, which ends the
    updates.
    """
    page = request.GET.get("p", "")[:40]
    if request.GET.get("release") and page:
        # The page has other cards to watch: its request under way answers now.
        changes.release((request.user.pk, page))
        return _live(HttpResponse(status=204))
    filters = StudioFilterForm(request.GET, user=request.user)
    filters.is_valid()
    if filters.refuses_gallery():
        # Deleted, or no longer shared with them: the page says so, and stops asking.
        return _live(render(request, f"{STUDIO}#gallery-gone"))
    watched = _watched_cards(request.GET.getlist("w"))
    known = [int(pk) for pk in request.GET.getlist("k")[:LIVE_MAX_CARDS] if pk.isdigit()]
    anchor = request.GET.get("anchor", "")
    anchor = int(anchor) if anchor.isdigit() else None
    deadline = time.monotonic() + settings.LIVE_HOLD_SECONDS

    visible = Generation.objects.cards_for(request.user)
    gallery = filters.viewed_gallery
    # Which new generations may wake the request: made in this gallery, by the caller, or
    # (everything they can see) any; the view's query decides which of them it shows.
    if gallery:
        made_in = {"gallery_id": gallery.pk}
    else:
        made_in = None if filters.shows_everything else {"owner_id": request.user.pk}
    waited_for_saving = False
    while True:
        # Read first: a generation made while the cards are read is then still news.
        newest = changes.newest_pk() if anchor is not None else None
        current = {generation.pk: generation for generation in visible.filter(pk__in=watched)}
        changed = [g for pk, g in current.items() if card_version(g) != watched[pk]]
        gone = [pk for pk in watched if pk not in current]
        new = []
        if anchor is not None:
            arrivals = _view_generations(request, filters).filter(pk__gt=anchor)
            new = list(arrivals.exclude(pk__in=[*watched, *known])[:PAGE_SIZE])
        news = changed or gone or new
        # Images being stored are usually stored within a tenth of a second or two: when
        # that is all the news, wait that long for COMPLETED, so the page asks once for both.
        saving = (
            changed
            and not (gone or new or waited_for_saving)
            and all(g.status == Generation.Status.DOWNLOADING for g in changed)
        )
        left = deadline - time.monotonic()
        if news and not (saving and left > 0):
            prefetch_related_objects([*changed, *new], "images")
            context = {"changed": changed, "gone": gone, "new": new}
            return _live(render(request, f"{STUDIO}#updates", context))
        if left <= 0:
            return _live(HttpResponse(status=204))
        waited_for_saving = waited_for_saving or saving
        timeout = min(left, schedule.LIVE_SAVING_SECONDS) if saving else left
        try:
            _wait_for_changes(request, current, newest, made_in, page, timeout)
        except changes.Superseded:
            return _live(HttpResponse(status=204))  # the page asked again; it reads no more
        except changes.Busy:
            # Every thread this process lets wait is waiting: answer now, ask later.
            response = _live(HttpResponse(status=204))
            response["Retry-After"] = "2"
            return response


def _wait_for_changes(request, current, newest, made_in, page, timeout):
    changes.wait(
        changes.snapshot(current.values()),
        newer_than=newest,
        made_in=made_in,
        timeout=timeout,
        key=(request.user.pk, page) if page else None,
    )


def _live(response):
    response[LIVE_HEADER] = "1"
    return response


def _watched_cards(values):
    """{pk: version} from the page's `w=<pk>:<version>` values; malformed ones are dropped."""
    watched = {}
    for value in values[:LIVE_MAX_CARDS]:
        pk, _, version = value.partition(":")
        if pk.isdigit():
            watched[int(pk)] = version
    return watched


@require_POST
@login_required
def generation_retry(request, pk):
    generation = generation_to_rerun(request.user, pk)
    try:
        # A second click, or a retry another tab already made, just shows the current state.
        if generation.can_retry and spend.retry(generation):
            tasks.enqueue_submit(generation)
    except spend.Refused as refused:
        # A retry is a new request: over a limit nothing is sent, and the card says why.
        if request.htmx:
            return _card(request, generation, refusal=refused.message)
        messages.error(request, refused.message)
        return _card_or_back(request, generation)
    return _card_or_back(request, generation, "Trying again: a fresh request is on its way.")


@require_POST
@login_required
def generation_cancel(request, pk):
    generation = generation_to_rerun(request.user, pk)
    if generation.can_cancel:
        generation.cancel()
    return _card_or_back(
        request, generation, "Cancelled. A job already running may still be billed."
    )


@require_POST
@login_required
def generation_favourite(request, pk):
    """Star or unstar for the caller alone; anyone who may see it keeps their own stars."""
    generation = generation_for_user(request.user, pk)
    # The wanted value, not a toggle: a double click or two tabs can't flip it back.
    generation.set_favourite(request.user, request.POST.get("favourite") == "1")
    return _card_or_back(request, generation)


@require_POST
@login_required
def generation_delete(request, pk):
    """Move a finished generation to the trash (restorable for TRASH_DAYS); a toast offers
    Undo at once."""
    generation = generation_to_remove(request.user, pk)
    if not generation.is_finished:
        return HttpResponse("Cancel the generation before deleting it.", status=409)
    Generation.objects.filter(pk=generation.pk).move_to_trash()
    message = "Moved to the trash."
    if request.htmx:
        # The card swaps itself out for nothing; the toast comes out of band.
        return HttpResponse(trash.toast(request, message, undo=[generation.pk], oob=True))
    trash.toast(request, message, undo=[generation.pk])
    return redirect(trash.next_url(request, "studio"))


def _card_or_back(request, generation, message=None):
    # Whoever moved it last, show what is true now (and the caller's own star).
    generation = generation_for_user(request.user, generation.pk)
    if request.htmx:
        return _card(request, generation)
    if message:
        messages.info(request, message)
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        return redirect(back)
    return redirect("studio")


def _card(request, generation, refusal=None):
    context = {"generation": generation, "refusal": refusal}
    return render(request, f"{STUDIO}#card", context)


# -- detail pages ---------------------------------------------------------------------------


@require_GET
@login_required
def generation_detail(request, pk):
    generation = generation_for_user(request.user, pk)
    first = generation.images.first()
    if first is not None:
        return redirect(first)
    # Not (or never) finished: the same page, showing its status and parameters.
    context = {"generation": generation, "galleries": _move_targets(request, generation)}
    return render(request, "gallery/image_detail.html", context)


@require_GET
@login_required
def image_detail(request, pk):
    image = image_for_user(request.user, pk)
    # With what the caller may do to it (their star, moving it).
    generation = generation_for_user(request.user, image.generation_id)
    newer, older = _neighbours(image)
    context = {
        "image": image,
        # The display rendition with srcset: the original travels only on Download.
        "picture": picture_of(
            image, lambda kind: reverse(f"image_{kind}", args=[image.pk]), original_allowed=True
        ),
        "generation": generation,
        "siblings": generation.images.all(),
        "newer": newer,
        "older": older,
        "galleries": _move_targets(request, generation),
    }
    return render(request, "gallery/image_detail.html", context)


def _move_targets(request, generation):
    """The galleries the caller may move this generation to, if they may move it."""
    if not generation.may_remove:
        return []
    return list(Gallery.objects.editable_by(request.user).select_related("owner"))


def _neighbours(image):
    """The images before and after this one in its gallery (newest first, then by index)."""
    generation = image.generation
    in_gallery = Image.objects.shown().filter(generation__gallery_id=generation.gallery_id)
    created, gid = generation.created_at, generation.pk
    older = in_gallery.filter(
        Q(generation__created_at__lt=created)
        | Q(generation__created_at=created, generation_id__lt=gid)
        | Q(generation_id=gid, index__gt=image.index)
    ).newest_first()
    newer = in_gallery.filter(
        Q(generation__created_at__gt=created)
        | Q(generation__created_at=created, generation_id__gt=gid)
        | Q(generation_id=gid, index__lt=image.index)
    ).order_by("generation__created_at", "generation_id", "-index")
    return newer.only("pk").first(), older.only("pk").first()
