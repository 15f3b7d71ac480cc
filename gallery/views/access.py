"""One door per private object: each helper finds it among the user's own, or raises 404.

Someone else's id and an id that doesn't exist get the same answer, so ids reveal nothing.
Every signed-in view reaches a gallery, generation, image or share link through here;
visitors with a share link come in through `gallery.views.share.live_link_or_404`.
"""

from django.shortcuts import get_object_or_404

from gallery.models import Gallery, Generation, Image, ShareLink


def gallery_for_user(user, pk):
    return get_object_or_404(Gallery.objects.for_user(user), pk=pk)


def generation_for_user(user, pk):
    return get_object_or_404(Generation.objects.for_user(user), pk=pk)


def image_for_user(user, pk):
    images = Image.objects.filter(generation__owner=user).select_related("generation__gallery")
    return get_object_or_404(images, pk=pk)


def share_link_for_user(user, pk):
    links = ShareLink.objects.filter(gallery__owner=user).select_related("gallery")
    return get_object_or_404(links, pk=pk)
