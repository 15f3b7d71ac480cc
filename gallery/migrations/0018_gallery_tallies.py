"""Each gallery keeps its counts (Gallery.kept_generations, shown_images), counted here once
from the rows that exist, so the Galleries and Team pages read them instead of counting."""

from django.db import migrations, models
from django.db.models import Func, OuterRef, Subquery
from django.db.models.functions import Coalesce


def _count(queryset):
    counted = queryset.order_by().annotate(n=Func("pk", function="COUNT")).values("n")
    return Coalesce(Subquery(counted), 0)


def count_every_gallery(apps, schema_editor):
    Gallery = apps.get_model("gallery", "Gallery")
    Generation = apps.get_model("gallery", "Generation")
    Image = apps.get_model("gallery", "Image")
    kept = Generation.objects.filter(gallery=OuterRef("pk"), trashed_at__isnull=True)
    shown = Image.objects.filter(
        generation__gallery=OuterRef("pk"),
        generation__status="COMPLETED",
        generation__trashed_at__isnull=True,
    )
    Gallery.objects.update(kept_generations=_count(kept), shown_images=_count(shown))


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0017_gallery_counts_from_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="gallery",
            name="kept_generations",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="gallery",
            name="shown_images",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_every_gallery, migrations.RunPython.noop),
    ]
