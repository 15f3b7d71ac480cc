"""Share links get their controls (password, downloads, prompts, a limit of views, when
last opened), and their tokens are stored hashed: every existing link keeps working, by
its hash and prefix, and the clear token column goes."""

import hashlib

from django.db import migrations, models

PREFIX_LENGTH = 8  # gallery.models.sharing.TOKEN_PREFIX_LENGTH when this was written


def hash_existing_tokens(apps, schema_editor):
    ShareLink = apps.get_model("gallery", "ShareLink")
    links = ShareLink.objects.only("pk", "token")
    for link in links.iterator(chunk_size=500):
        link.token_hash = hashlib.sha256(link.token.encode()).hexdigest()
        link.token_prefix = link.token[:PREFIX_LENGTH]
        link.save(update_fields=["token_hash", "token_prefix"])


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0009_sighting"),
    ]

    operations = [
        migrations.AddField(
            model_name="sharelink",
            name="token_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="sharelink",
            name="token_prefix",
            field=models.CharField(default="", editable=False, max_length=8),
            preserve_default=False,
        ),
        # Going back can't bring the tokens back: links made before stop working then.
        migrations.RunPython(hash_existing_tokens, migrations.RunPython.noop, elidable=True),
        migrations.RemoveField(model_name="sharelink", name="token"),
        migrations.AlterField(
            model_name="sharelink",
            name="token_hash",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
        migrations.AlterField(
            model_name="sharelink",
            name="token_prefix",
            field=models.CharField(db_index=True, editable=False, max_length=8),
        ),
        migrations.AddField(
            model_name="sharelink",
            name="password",
            field=models.CharField(blank=True, editable=False, max_length=128),
        ),
        migrations.AddField(
            model_name="sharelink",
            name="allow_downloads",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="sharelink",
            name="show_prompts",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="sharelink",
            name="max_views",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="sharelink",
            name="last_opened_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
