"""The galleries page: create, rename and delete galleries, their members, visibility and
share links, and move generations between galleries; the Team page.

Forms on a gallery's card post with htmx and get the re-rendered card back (the
`gallery_card` partial of galleries.html); without JavaScript they post normally and the
view redirects to the page, or renders it with the form's errors. Only a gallery's owner
manages it (gallery_to_manage); its members see it among "Shared with me" and may leave.
"""

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from gallery import spend
from gallery.forms import (
    GalleryBudgetForm,
    GalleryDeleteForm,
    GalleryForm,
    GalleryMemberForm,
    GalleryVisibilityForm,
    MemberRoleForm,
    MoveGenerationForm,
    ShareLinkForm,
)
from gallery.models import (
    Gallery,
    GalleryMember,
    Image,
    ShareLink,
    UsageTotal,
    month_of,
)
from gallery.models.accounts import AWAITING_APPROVAL_TO_SHARE, is_team_member
from gallery.models.galleries import MEMBER_ROLES
from gallery.views import share
from gallery.views.access import (
    gallery_to_manage,
    generation_to_remove,
    membership_to_manage,
    own_membership,
    share_link_for_user,
)

# The Team page shows this many of a gallery's latest images.
TEAM_LATEST_IMAGES = 4


def _with_counts(galleries, latest=0):
    """Galleries with their counts, a cover (the newest image) and their owner."""
    return galleries.select_related("owner").with_counts(latest=latest)


def _with_latest_images(galleries):
    """The galleries (from _with_counts(..., latest=TEAM_LATEST_IMAGES)), each with
    `latest`: its newest images, read in one query for all of them."""
    galleries = list(galleries)
    wanted = [pk for gallery in galleries for pk in gallery.latest_image_ids]
    images = Image.objects.filter(pk__in=wanted).select_related("generation").in_bulk()
    for gallery in galleries:
        gallery.latest = [images[pk] for pk in gallery.latest_image_ids if pk in images]
    return galleries


def _members():
    return Prefetch("members", queryset=GalleryMember.objects.select_related("user"))


def _owned_galleries(user):
    # This month's spend beside each budget, from the ledger's month totals.
    month_cost = UsageTotal.objects.filter(
        scope=UsageTotal.Scope.GALLERY, month=month_of(), gallery=OuterRef("pk")
    ).values("cost")[:1]
    return (
        _with_counts(Gallery.objects.owned_by(user))
        .annotate(month_cost=Coalesce(Subquery(month_cost), Value(Decimal(0))))
        .prefetch_related("share_links", _members())
    )


def _form_ids(gallery):
    # Every card holds the same forms: prefix their element ids so labels stay unique.
    return f"gallery-{gallery.pk}-%s"


def _edit_form(link, data=None):
    # Its own element ids: every live link of the page has one.
    return ShareLinkForm(data, instance=link, auto_id=f"link-{link.pk}-%s")


def _card(
    gallery,
    *,
    rename_form=None,
    share_form=None,
    member_form=None,
    budget_form=None,
    open_panel="",
    new_link=None,
    edit_forms=None,
):
    ids = _form_ids(gallery)
    links = list(gallery.share_links.all())
    edit_forms = edit_forms or {}
    # Live links (used-up ones too: their owner may raise the limit), each with its
    # settings form; revoked and expired ones under "Ended", the latest first.
    live_links = [
        {"link": link, "form": edit_forms.get(link.pk) or _edit_form(link)}
        for link in links
        if link.is_live
    ]
    ended_links = sorted(
        (link for link in links if link.is_ended), key=lambda link: link.ended_at, reverse=True
    )
    return {
        "may_manage": True,  # reached through gallery_to_manage (the page says otherwise)
        "live_links": live_links,
        "ended_links": ended_links,
        "new_link": new_link,
        "gallery": gallery,
        "budget_form": budget_form or GalleryBudgetForm(instance=gallery, auto_id=ids),
        "rename_form": rename_form or GalleryForm(instance=gallery, auto_id=ids),
        "share_form": share_form or ShareLinkForm(auto_id=ids),
        "member_form": member_form or GalleryMemberForm(gallery=gallery, auto_id=ids),
        "visibility_form": GalleryVisibilityForm(instance=gallery, auto_id=ids),
        "member_roles": MEMBER_ROLES,
        "delete_form": None if gallery.is_default else GalleryDeleteForm(auto_id=ids),
        "open_panel": open_panel,
    }


def _render_page(request, *, create_form=None, card=None):
    # An account waiting for approval sees its galleries, and manages none of them yet.
    may_manage = is_team_member(request.user)
    cards = [
        card if card and card["gallery"].pk == gallery.pk else _card(gallery)
        for gallery in _owned_galleries(request.user)
    ]
    for each in cards:
        each["may_manage"] = may_manage
    shared = _with_counts(Gallery.objects.shared_with(request.user)).order_by(
        "name", "owner__username"
    )
    create_form = create_form or GalleryForm(instance=Gallery(owner=request.user))
    context = {"cards": cards, "shared": shared, "create_form": create_form}
    context["may_manage"] = may_manage
    return render(request, "gallery/galleries.html", context)


def _respond_with_card(request, gallery, **card_options):
    """htmx gets the card again; a plain post gets the page (with errors, or with a new
    link shown this once) or a redirect."""
    names = ("rename_form", "share_form", "member_form", "budget_form")
    forms = [card_options.get(name) for name in names]
    forms += (card_options.get("edit_forms") or {}).values()
    has_errors = any(form is not None and form.errors for form in forms)
    if request.htmx or has_errors or card_options.get("new_link"):
        card = _card(_owned_galleries(request.user).get(pk=gallery.pk), **card_options)
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
    if not is_team_member(request.user):
        messages.error(request, AWAITING_APPROVAL_TO_SHARE)
        return redirect("gallery_list")
    form = GalleryForm(request.POST, instance=Gallery(owner=request.user))
    if not form.is_valid():
        return _render_page(request, create_form=form)
    gallery = form.save()
    messages.success(request, f"Created the gallery “{gallery.name}”.")
    return redirect(f"{reverse('gallery_list')}#gallery-{gallery.pk}")


@require_POST
@login_required
def gallery_rename(request, pk):
    gallery = gallery_to_manage(request.user, pk)
    form = GalleryForm(request.POST, instance=gallery, auto_id=_form_ids(gallery))
    if not form.is_valid():
        return _respond_with_card(request, gallery, rename_form=form, open_panel="rename")
    form.save()
    return _respond_with_card(request, gallery)


@require_POST
@login_required
def gallery_delete(request, pk):
    gallery = gallery_to_manage(request.user, pk)
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
        messages.success(
            request,
            f"Deleted “{gallery.name}”; its images are in the trash for {settings.TRASH_DAYS} "
            "days, should you want one back.",
        )
    return redirect("gallery_list")


@require_POST
@login_required
def gallery_budget(request, pk):
    gallery = gallery_to_manage(request.user, pk)
    form = GalleryBudgetForm(request.POST, instance=gallery, auto_id=_form_ids(gallery))
    if not form.is_valid():
        return _respond_with_card(request, gallery, budget_form=form, open_panel="budget")
    # Only this column: a rename may be saving the same row at this moment.
    form.instance.save(update_fields=["monthly_budget", "updated_at"])
    if not request.htmx:
        messages.success(request, f"Saved the budget of “{gallery.name}”.")
    return _respond_with_card(request, gallery, open_panel="budget")


@require_POST
@login_required
def sharelink_create(request, pk):
    gallery = gallery_to_manage(request.user, pk)
    form = ShareLinkForm(request.POST, auto_id=_form_ids(gallery))
    if not form.is_valid():
        return _respond_with_card(request, gallery, share_form=form, open_panel="share")
    link = form.save(commit=False)
    link.gallery = gallery
    link.save()
    # The only time the whole link exists outside its visitors' hands: only its hash is kept.
    new_link = {"link": link, "url": request.build_absolute_uri(ShareLink.url_for(link.token))}
    response = _respond_with_card(request, gallery, open_panel="share", new_link=new_link)
    # Nor may the browser keep this page to show again from its cache or history.
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True)
    return response


@require_POST
@login_required
def sharelink_edit(request, pk):
    """New settings for a live link; its token, and so the link people hold, stay."""
    link = share_link_for_user(request.user, pk)
    if link.is_ended:
        messages.error(request, "That link has ended: make a new one instead.")
        return _respond_with_card(request, link.gallery, open_panel="share")
    form = _edit_form(link, request.POST)
    if not form.is_valid():
        return _respond_with_card(
            request, link.gallery, open_panel="share", edit_forms={link.pk: form}
        )
    form.save()
    if not request.htmx:
        messages.success(request, f"Saved the settings of “{link.label or 'Untitled link'}”.")
    return _respond_with_card(request, link.gallery, open_panel="share")


@require_POST
@login_required
def sharelink_revoke(request, pk):
    link = share_link_for_user(request.user, pk)
    link.revoke()
    return _respond_with_card(request, link.gallery, open_panel="share")


@require_GET
@login_required
def sharelink_preview(request, pk):
    """The link's gallery page as its visitors see it, with its settings applied."""
    link = share_link_for_user(request.user, pk)
    return share.gallery_page(request, share.Sharing(link))


@require_GET
@login_required
def sharelink_preview_image(request, pk, image_pk):
    link = share_link_for_user(request.user, pk)
    return share.image_page(request, share.Sharing(link), image_pk)


@require_POST
@login_required
def member_add(request, pk):
    gallery = gallery_to_manage(request.user, pk)
    form = GalleryMemberForm(request.POST, gallery=gallery, auto_id=_form_ids(gallery))
    if not form.is_valid():
        return _respond_with_card(request, gallery, member_form=form, open_panel="members")
    member = form.save(added_by=request.user)
    if not request.htmx:
        role = member.get_role_display().lower()
        messages.success(request, f"{member.user} can now see “{gallery.name}” as a {role}.")
    return _respond_with_card(request, gallery, open_panel="members")


@require_POST
@login_required
def member_role(request, pk):
    member = membership_to_manage(request.user, pk)
    form = MemberRoleForm(request.POST, instance=member)
    if form.is_valid():
        member.save(update_fields=["role"])
    elif not request.htmx:
        messages.error(request, "Choose viewer or contributor.")
    return _respond_with_card(request, member.gallery, open_panel="members")


@require_POST
@login_required
def member_remove(request, pk):
    """Take someone out of a gallery: from their next request on, they see none of it."""
    member = membership_to_manage(request.user, pk)
    member.delete()
    if not request.htmx:
        messages.success(request, f"{member.user} no longer sees “{member.gallery.name}”.")
    return _respond_with_card(request, member.gallery, open_panel="members")


@require_POST
@login_required
def gallery_visibility(request, pk):
    gallery = gallery_to_manage(request.user, pk)
    form = GalleryVisibilityForm(request.POST, instance=gallery)
    if form.is_valid():
        # Only this column: a rename may be saving the same row at this moment.
        gallery.save(update_fields=["visibility", "updated_at"])
    elif not request.htmx:
        messages.error(request, "Choose who can see the gallery.")
    return _respond_with_card(request, gallery, open_panel="members")


@require_POST
@login_required
def gallery_leave(request, pk):
    member = own_membership(request.user, pk)
    member.delete()
    if request.htmx:
        return HttpResponse()  # the gallery's card swaps itself out for nothing
    messages.success(request, f"You left “{member.gallery.name}”.")
    return redirect("gallery_list")


@require_GET
@login_required
def team(request):
    """What the team shares: the caller's own shared galleries (with whom), those shared
    with them, and those opened to the whole team, each with its newest images."""

    def galleries(queryset):
        queryset = _with_counts(queryset, latest=TEAM_LATEST_IMAGES)
        return _with_latest_images(queryset.order_by("name", "owner__username"))

    sections = [
        {
            "key": "mine",
            "title": "Shared by me",
            "galleries": galleries(
                Gallery.objects.shared_by(request.user).prefetch_related(_members())
            ),
            "empty": "You share no gallery yet: add teammates to one, or open it to the "
            "team, on the Galleries page.",
        },
        {
            "key": "shared",
            "title": "Shared with me",
            "galleries": galleries(Gallery.objects.shared_with(request.user)),
            "empty": "No one has added you to a gallery yet.",
        },
        {
            "key": "open",
            "title": "Open to the team",
            "galleries": galleries(Gallery.objects.open_to_team(request.user)),
            "empty": "No teammate has opened a gallery to everyone yet.",
        },
    ]
    return render(request, "gallery/team.html", {"sections": sections})


@require_POST
@login_required
def generation_move(request, pk):
    generation = generation_to_remove(request.user, pk)
    form = MoveGenerationForm(request.POST, user=request.user)
    if not form.is_valid():
        raise Http404("No such gallery of yours")
    try:
        spend.move(generation, form.cleaned_data["gallery"])
    except spend.Refused as refused:
        # Not sent yet, and the new gallery's budget has no room for it: it stays put.
        return HttpResponse(refused.message, status=409, content_type="text/plain")
    next_url = request.POST.get("next", "")
    if request.htmx:
        return render(
            request,
            "gallery/_move_form.html",
            {
                "generation": generation,
                "galleries": Gallery.objects.editable_by(request.user).select_related("owner"),
                "moved": True,
                "next": next_url,
            },
        )
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = f"{reverse('studio')}?gallery={generation.gallery_id}"
    return redirect(next_url)
