from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_q.signals import post_spawn

from gallery.models import DisplayRendition, Gallery, Image


@receiver(post_delete, sender=Image)
def delete_image_files(sender, instance, **kwargs):
    # Files go only once the rows are really gone, so a rolled-back delete keeps them.
    transaction.on_commit(instance.delete_files)


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
