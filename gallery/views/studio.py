"""The studio: generate, watch generations live, browse and manage them, image detail.

templates/gallery/studio.html holds the page and every fragment htmx swaps (the form,
the gallery, a page of cards, one card) as partials, so a polled card, a "load more"
page and the first render are the same markup. Which fragment an htmx request gets is
decided by the element it targets (HX-Target), as in django-htmx's example project.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, Subquery
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from gallery import spend, tasks
from gallery.forms import GenerationForm, StudioFilterForm
from gallery.models import Gallery, Generation, Image
from gallery.templatetags.studio import card_version
from gallery.views.access import generation_for_user, image_for_user

# Cards per page: enough to fill a large screen twice, small enough to render fast.
PAGE_SIZE = 24
STUDIO = "gallery/studio.html"


# -- the studio page ------------------------------------------------------------------------


@require_GET
@login_required
def studio(request):
    target = request.htmx.target if request.htmx else None
    if target == "generate-form":  # "Use these settings": only the form is needed
        response = render(request, f"{STUDIO}#generate-form", {"form": _compose_form(request)})
        return _vary_on_htmx(response)

    context = _gallery_context(request)
    if target == "load-more":
        template = f"{STUDIO}#grid-page"
    elif target == "gallery":
        template = f"{STUDIO}#gallery"
    else:
        template = STUDIO
        context["form"] = _compose_form(request, gallery=context["gallery"])
    return _vary_on_htmx(render(request, template, context))


def _gallery_context(request):
    """One page of the user's generations, filtered as the query string asks."""
    filters = StudioFilterForm(request.GET, owner=request.user)
    filters.is_valid()  # a bad value drops only that filter (cleaned_data keeps the rest)
    _fetch_choices_once(filters.fields["gallery"])
    generations = filters.apply(Generation.objects.for_user(request.user))
    cursor = request.GET.get("before", "")
    if cursor.isdigit():
        generations = _older_than(generations, int(cursor))
    # One more than a page tells whether another page exists, without a COUNT query.
    cards = list(generations.prefetch_related("images")[: PAGE_SIZE + 1])
    more_url = None
    if len(cards) > PAGE_SIZE:
        cards = cards[:PAGE_SIZE]
        query = request.GET.copy()
        query.pop("use", None)
        query["before"] = cards[-1].pk
        more_url = f"{reverse('studio')}?{query.urlencode()}"
    return {
        "generations": cards,
        "more_url": more_url,
        "filters": filters,
        "filtering": filters.is_filtering(),
        "gallery": filters.cleaned_data.get("gallery"),
    }


def _compose_form(request, *, gallery=None):
    """The generate form, filled from a past generation when asked (?use=<pk>)."""
    initial = {"gallery": gallery} if gallery else {}
    source = request.GET.get("use", "")
    if source.isdigit():
        past = generation_for_user(request.user, int(source))
        initial = {**past.provider_params(), "gallery": past.gallery_id}
    return _generation_form(request, initial=initial)


def _generation_form(request, *args, **kwargs):
    form = GenerationForm(*args, owner=request.user, **kwargs)
    _fetch_choices_once(form.fields["gallery"])
    return form


def _fetch_choices_once(field):
    """A rendered model select reads its choices twice (once for `required`): one query."""
    field.widget.choices = list(iter(field.choices))  # iter(): list() would COUNT first


def _older_than(generations, pk):
    """Keyset pagination: generations after `pk` in newest-first order.

    Unlike page numbers this stays right while new cards appear at the top of the page.
    """
    anchor = Subquery(Generation.objects.filter(pk=pk).values("created_at")[:1])
    return generations.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, pk__lt=pk))


def _vary_on_htmx(response):
    # The same URL answers with the page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


# -- generating -----------------------------------------------------------------------------


@require_POST
@login_required
def generate(request):
    form = _generation_form(request, request.POST)
    if form.is_valid():
        generation = form.save()
        tasks.enqueue_submit(generation)
        if not request.htmx:
            # The form comes back filled with these settings, as it does with htmx.
            return redirect(f"{reverse('studio')}?use={generation.pk}")
        # The same (valid) form keeps the prompt for a quick next try; the new card goes
        # to the top of the grid out of band.
        context = {"form": form, "generation": generation, "is_new": True}
        return render(request, f"{STUDIO}#generated", context)
    if request.htmx:
        return render(request, f"{STUDIO}#generate-form", {"form": form})
    # Without JavaScript: the whole page again, errors beside their fields, nothing saved.
    return render(request, STUDIO, {**_gallery_context(request), "form": form})


@require_GET
@login_required
def generation_card(request, pk):
    """The polled card. 204 while nothing visible changed; 286 on the final render."""
    generation = generation_for_user(request.user, pk)
    if not generation.is_finished and request.GET.get("seen") == card_version(generation):
        return HttpResponse(status=204)
    return _card(request, generation)


@require_POST
@login_required
def generation_retry(request, pk):
    generation = generation_for_user(request.user, pk)
    if generation.can_retry and (refusal := spend.retry_refusal(generation)):
        # Over the monthly quota: nothing is sent, and the card says why.
        if request.htmx:
            return _card(request, generation, refusal=refusal)
        messages.error(request, refusal)
        return _card_or_back(request, generation)
    # A second click, or a retry another tab already made, just shows the current state.
    if generation.can_retry and generation.retry():
        tasks.enqueue_submit(generation)
    return _card_or_back(request, generation, "Trying again: a fresh request is on its way.")


@require_POST
@login_required
def generation_cancel(request, pk):
    generation = generation_for_user(request.user, pk)
    if generation.can_cancel:
        generation.cancel()
    return _card_or_back(
        request, generation, "Cancelled. A job already running may still be billed."
    )


@require_POST
@login_required
def generation_favourite(request, pk):
    generation = generation_for_user(request.user, pk)
    # The wanted value, not a toggle: a double click or two tabs can't flip it back.
    generation.favourite = request.POST.get("favourite") == "1"
    generation.save(update_fields=["favourite"])
    return _card_or_back(request, generation)


@require_POST
@login_required
def generation_delete(request, pk):
    """Delete a finished generation with its images (their files go once the rows do)."""
    generation = generation_for_user(request.user, pk)
    if not generation.is_finished:
        return HttpResponse("Cancel the generation before deleting it.", status=409)
    generation.delete()
    if request.htmx:
        return HttpResponse()  # the card swaps itself out for nothing
    messages.success(request, "Deleted.")
    return redirect("studio")


def _card_or_back(request, generation, message=None):
    generation.refresh_from_db()  # whoever moved it last, show what is true now
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
    response = render(request, f"{STUDIO}#card", context)
    if generation.is_finished:
        response.status_code = HTMX_STOP_POLLING
    return response


# -- detail pages ---------------------------------------------------------------------------


@require_GET
@login_required
def generation_detail(request, pk):
    generation = generation_for_user(request.user, pk)
    first = generation.images.first()
    if first is not None:
        return redirect(first)
    # Not (or never) finished: the same page, showing its status and parameters.
    context = {"generation": generation, "galleries": Gallery.objects.for_user(request.user)}
    return render(request, "gallery/image_detail.html", context)


@require_GET
@login_required
def image_detail(request, pk):
    image = image_for_user(request.user, pk)
    generation = image.generation
    newer, older = _neighbours(image)
    context = {
        "image": image,
        "generation": generation,
        "siblings": generation.images.all(),
        "newer": newer,
        "older": older,
        "galleries": Gallery.objects.for_user(request.user),
    }
    return render(request, "gallery/image_detail.html", context)


def _neighbours(image):
    """The images before and after this one in its gallery (newest first, then by index)."""
    generation = image.generation
    in_gallery = Image.objects.filter(generation__gallery_id=generation.gallery_id)
    created, gid = generation.created_at, generation.pk
    older = in_gallery.filter(
        Q(generation__created_at__lt=created)
        | Q(generation__created_at=created, generation_id__lt=gid)
        | Q(generation_id=gid, index__gt=image.index)
    ).order_by("-generation__created_at", "-generation_id", "index")
    newer = in_gallery.filter(
        Q(generation__created_at__gt=created)
        | Q(generation__created_at=created, generation_id__gt=gid)
        | Q(generation_id=gid, index__lt=image.index)
    ).order_by("generation__created_at", "generation_id", "-index")
    return newer.only("pk").first(), older.only("pk").first()
