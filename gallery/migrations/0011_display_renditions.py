import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0010_share_link_controls"),
    ]

    operations = [
        migrations.CreateModel(
            name="DisplayRendition",
            fields=[
                (
                    "image",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="display",
                        serialize=False,
                        to="gallery.image",
                    ),
                ),
                ("file", models.FileField(max_length=255, upload_to="")),
                ("width", models.PositiveIntegerField()),
                ("height", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
