"""One door per object: each helper finds it among what the caller may see or change, or
raises 404.

The rule itself lives in the models (`visible_to`, `Role`, `Generation.may_remove`...);
these helpers are how every signed-in view applies it. An object the caller may not
see, may see but not change, or that does not exist all get the same 404, so ids
reveal nothing. Visitors with a share link come in through
`gallery.views.share.live_link_or_404`.
"""

from django.http import Http404
from django.shortcuts import get_object_or_404

from gallery.models import Gallery, GalleryMember, Generation, Image, ShareLink


def gallery_for_user(user, pk):
    """A gallery `user` may see, with their `role` in it."""
    return get_object_or_404(Gallery.objects.visible_to(user).select_related("owner"), pk=pk)


def gallery_to_manage(user, pk):
    """A gallery `user` manages: renaming, deleting, members, visibility, share links."""
    return get_object_or_404(Gallery.objects.managed_by(user), pk=pk)


def generation_for_user(user, pk):
    """A generation in a gallery `user` may see, with what they may do to it."""
    generations = Generation.objects.visible_to(user).select_related("gallery", "owner")
    return get_object_or_404(generations, pk=pk)


def generation_to_rerun(user, pk):
    """One `user` may retry or cancel: theirs, in a gallery they may still add to."""
    generation = generation_for_user(user, pk)
    if not generation.may_rerun:
        raise Http404("No such generation of yours")
    return generation


def generation_to_remove(user, pk):
    """One `user` may delete or move: in their gallery, or theirs where they contribute."""
    generation = generation_for_user(user, pk)
    if not generation.may_remove:
        raise Http404("No such generation of yours")
    return generation


def trashed_to_remove(user, pks):
    """The trashed generations among `pks` that `user` may restore or delete forever
    (Generation.objects.trash_of), as a queryset to act on; 404 when there is none."""
    mine = Generation.objects.trash_of(user).filter(pk__in=pks).values("pk")
    found = Generation.objects.filter(pk__in=mine)
    if not found.exists():
        raise Http404("Nothing of yours in the trash")
    return found


def trashed_image_for_user(user, pk):
    """An image of a trashed generation `user` may restore: the Trash page's thumbnails
    (every other door to it answers 404 while it is trashed)."""
    trash = Generation.objects.trash_of(user).values("pk")
    return get_object_or_404(
        Image.objects.select_related("generation"), pk=pk, generation__in=trash
    )


def image_for_user(user, pk):
    images = Image.objects.visible_to(user).select_related(
        "generation__gallery", "generation__owner", "display"
    )
    return get_object_or_404(images, pk=pk)


def share_link_for_user(user, pk):
    links = ShareLink.objects.managed_by(user).select_related("gallery")
    return get_object_or_404(links, pk=pk)


def membership_to_manage(user, pk):
    """A membership of a gallery `user` manages (to change its role or remove it)."""
    managed = Gallery.objects.managed_by(user).values("pk")
    members = GalleryMember.objects.filter(gallery__in=managed).select_related("gallery", "user")
    return get_object_or_404(members, pk=pk)


def own_membership(user, gallery_pk):
    """`user`'s own membership of a gallery, to leave it."""
    return get_object_or_404(
        GalleryMember.objects.select_related("gallery"), gallery_id=gallery_pk, user=user
    )
