"""The trash: what was deleted waits here TRASH_DAYS days, restorable, then goes for good.

Deleting (a card's Delete, the bulk bar's, a gallery deleted with its images) sets
`Generation.trashed_at`; from then on every page, file, zip and share link leaves it out,
because they all ask `Generation.objects.visible_to` or `Image.objects.shown`. Whoever may
remove a generation (Role.may_remove: the gallery's owner, or who made it while they may
still add) finds it on their Trash page, and may restore it or delete it forever.

After a delete a toast offers Undo: with htmx it comes out of band with the answer; without
JavaScript it waits in the session for the page the browser is sent back to
(gallery.context_processors.darkroom). Undo posts to `trash_restore` like the Trash page.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from gallery.models import Generation
from gallery.views.access import trashed_to_remove

TRASH_PAGE_SIZE = 48
# At most this many generations one request acts on (a page of cards holds 24 per "load more").
MAX_SELECTED = 1000
TOAST = "darkroom_toast"


def selected_pks(request):
    """The generations a form names (`g`, once each), malformed values dropped."""
    values = request.POST.getlist("g")[:MAX_SELECTED]
    return sorted({int(value) for value in values if value.isdigit()})


def next_url(request, default):
    """Where a form's `next` sends the browser back to, if it is one of ours."""
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        return back
    return reverse(default) if "/" not in default else default


def plural(count, one="generation", many="generations"):
    return f"{count} {one if count == 1 else many}"


def toast(request, message, *, undo=(), oob=False):
    """The toast after a change: rendered now (htmx, out of band), or kept for the page
    the browser goes to next. `undo` names trashed generations its Undo restores."""
    # Undo comes back to the page the delete came from: a form's `next`, or for htmx the
    # page htmx says it is on (a card's Delete posts to its own URL, no page to return to).
    back = request.POST.get("next", "")
    if not back and request.htmx:
        back = request.htmx.current_url_abs_path or ""
    data = {"message": message, "undo": list(undo), "next": back}
    if oob:
        context = {"toast": data, "oob": True}
        return render_to_string("gallery/_toast.html", context, request=request)
    request.session[TOAST] = data
    return ""


def pop_toast(request):
    """The toast a redirect left for this page, once."""
    if not request.user.is_authenticated:
        return None
    return request.session.pop(TOAST, None)


@require_GET
@login_required
def trash(request):
    generations = (
        Generation.objects.trash_of(request.user)
        .select_related("gallery", "owner")
        .prefetch_related("images")
    )
    page = Paginator(generations, TRASH_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "gallery/trash.html", {"page": page, "trash_days": settings.TRASH_DAYS})


@require_POST
@login_required
def trash_restore(request):
    """Restore the trashed generations named (the Trash page's Restore, the toast's Undo)."""
    restored = trashed_to_remove(request.user, selected_pks(request)).restore()
    messages.success(request, f"Restored {plural(restored)}: back where they were.")
    return redirect(next_url(request, "trash"))


@require_POST
@login_required
def trash_delete(request):
    """Delete forever the trashed generations named, with their files."""
    deleted = trashed_to_remove(request.user, selected_pks(request)).delete_forever()
    messages.success(request, f"Deleted {plural(deleted)} for good.")
    return redirect(next_url(request, "trash"))


@require_POST
@login_required
def trash_empty(request):
    """Delete forever everything in the caller's trash (what they may remove)."""
    mine = Generation.objects.trash_of(request.user).values("pk")
    deleted = Generation.objects.filter(pk__in=mine).delete_forever()
    if deleted:
        messages.success(request, f"Emptied the trash: {plural(deleted)} deleted for good.")
    else:
        messages.info(request, "The trash was already empty.")
    return redirect("trash")
