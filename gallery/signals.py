from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_q.signals import post_spawn

from gallery.models import DisplayRendition, Gallery, Generation, Image
from gallery.models.galleries import recount_galleries


@receiver(post_delete, sender=Image)
def delete_image_files(sender, instance, **kwargs):
    # Files go only once the rows are really gone, so a rolled-back delete keeps them.
    transaction.on_commit(instance.delete_files)


# -- a gallery's tallies (Gallery.kept_generations, shown_images) for rows saved or deleted
# one at a time; the queryset paths recount themselves (GalleryQuerySet.recount).


@receiver(post_save, sender=Generation)
def count_a_generation(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    if created:
        # Generate's own path: one more, without reading the gallery's other rows.
        if instance.trashed_at is None:
            Gallery.objects.filter(pk=instance.gallery_id).update(
                kept_generations=F("kept_generations") + 1
            )
    else:  # an operator's edit in admin, a move (spend.move recounts where it left)
        recount_galleries([instance.gallery_id])


@receiver(post_delete, sender=Generation)
def uncount_a_generation(sender, instance, origin=None, **kwargs):
    # The trash was never counted; a gallery or account being deleted takes its tallies
    # with it (recounting it once per row would read the gallery again for every row).
    if instance.trashed_at is None and not isinstance(origin, (Gallery, get_user_model())):
        recount_galleries([instance.gallery_id])


@receiver(post_save, sender=Image)
def count_an_image(sender, instance, created, raw=False, **kwargs):
    # The pipeline stores a generation's images together and recounts once
    # (Generation.store_images); this is for an image added to a finished one by hand.
    if created and not raw:
        recount_galleries([instance.generation.gallery_id])


@receiver(post_delete, sender=Image)
def uncount_an_image(sender, instance, origin=None, **kwargs):
    # Images deleted as such (one, or a queryset of them); not those taken with their
    # generation or gallery, whose own deletion counts.
    if isinstance(origin, Image) or getattr(origin, "model", None) is Image:
        recount_galleries(
            Generation.objects.filter(pk=instance.generation_id).values_list(
                "gallery_id", flat=True
            )
        )


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_new_user_a_gallery(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        Gallery.default_for(instance)


@receiver(post_spawn)
def resume_pipeline_when_a_worker_starts(sender, proc_name, **kwargs):
    from gallery.tasks import resume_after_restart

    resume_after_restart()


@receiver(post_delete, sender=DisplayRendition)
def delete_display_file(sender, instance, **kwargs):
    transaction.on_commit(instance.delete_file)
