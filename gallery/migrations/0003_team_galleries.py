# Team galleries: memberships with a role, visibility (existing galleries stay private),
# and favourites that belong to a person rather than to the generation.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def favourites_become_personal(apps, schema_editor):
    Generation = apps.get_model("gallery", "Generation")
    Favourite = apps.get_model("gallery", "Favourite")
    starred = Generation.objects.filter(favourite=True).values_list("pk", "owner_id")
    Favourite.objects.bulk_create(
        (Favourite(generation_id=pk, user_id=owner) for pk, owner in starred.iterator()),
        batch_size=500,
    )


def favourites_back_to_generations(apps, schema_editor):
    # Going back, a generation is a favourite if the person who made it starred it.
    Generation = apps.get_model("gallery", "Generation")
    Favourite = apps.get_model("gallery", "Favourite")
    mine = Favourite.objects.filter(
        generation=models.OuterRef("pk"), user=models.OuterRef("owner")
    )
    Generation.objects.filter(models.Exists(mine)).update(favourite=True)


class Migration(migrations.Migration):

    dependencies = [
        ('gallery', '0002_watchdog_schedule'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Favourite',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.CreateModel(
            name='GalleryMember',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(choices=[('viewer', 'Viewer'), ('contributor', 'Contributor')], default='viewer', max_length=16)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'verbose_name': 'gallery member',
                'ordering': ['user__username'],
            },
        ),
        migrations.AddField(
            model_name='gallery',
            name='visibility',
            field=models.CharField(choices=[('private', 'Only me and the people I add'), ('team', 'Everyone in the team can see it')], default='private', max_length=16),
        ),
        migrations.AlterField(
            model_name='generation',
            name='owner',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='generations', to=settings.AUTH_USER_MODEL, verbose_name='made by'),
        ),
        migrations.AddIndex(
            model_name='gallery',
            index=models.Index(fields=['visibility'], name='gallery_visibility'),
        ),
        migrations.AddField(
            model_name='favourite',
            name='generation',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='favourites', to='gallery.generation'),
        ),
        migrations.AddField(
            model_name='favourite',
            name='user',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='favourites', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='gallerymember',
            name='added_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='gallerymember',
            name='gallery',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='members', to='gallery.gallery'),
        ),
        migrations.AddField(
            model_name='gallerymember',
            name='user',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='gallery_memberships', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddConstraint(
            model_name='favourite',
            constraint=models.UniqueConstraint(fields=('user', 'generation'), name='favourite_once'),
        ),
        migrations.AddConstraint(
            model_name='gallerymember',
            constraint=models.UniqueConstraint(fields=('gallery', 'user'), name='gallery_member_once'),
        ),
        # Before the column goes: today's stars become their owners' own favourites.
        migrations.RunPython(favourites_become_personal, favourites_back_to_generations),
        migrations.RemoveField(
            model_name='generation',
            name='favourite',
        ),
    ]
