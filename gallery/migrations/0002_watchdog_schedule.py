from django.db import migrations

WATCHDOG = "darkroom-watchdog"


def add_watchdog(apps, schema_editor):
    # Every minute: a worker heartbeat for /healthz, and a poller started if work waits
    # (for instance after every worker was killed and the cluster came back).
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=WATCHDOG,
        defaults={"func": "gallery.tasks.watchdog", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove_watchdog(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=WATCHDOG).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gallery", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(add_watchdog, remove_watchdog)]
