"""What keeps the pipeline running: leases held by one process at a time, heartbeats."""

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Lease(models.Model):
    """A named lease one process holds at a time (a poller); also a worker's heartbeat.

    Taking and renewing are conditional UPDATEs, so of two processes racing for an
    expired lease exactly one wins; a holder that dies simply lets it expire.
    """

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name

    @classmethod
    def acquire(cls, name, holder, seconds):
        now = timezone.now()
        cls.objects.get_or_create(name=name)
        free = Q(expires_at__isnull=True) | Q(expires_at__lt=now) | Q(holder=holder)
        return (
            cls.objects.filter(free, name=name).update(
                holder=holder, expires_at=now + timedelta(seconds=seconds), renewed_at=now
            )
            == 1
        )

    @classmethod
    def release(cls, name, holder=None):
        """Give the lease up; without `holder`, whoever holds it."""
        leases = cls.objects.filter(name=name)
        if holder is not None:
            leases = leases.filter(holder=holder)
        leases.update(expires_at=None, holder="")

    @classmethod
    def is_held(cls, name):
        return cls.objects.filter(name=name, expires_at__gte=timezone.now()).exists()

    @classmethod
    def beat(cls, name):
        """Record that a process named `name` is alive now."""
        now = timezone.now()
        cls.objects.update_or_create(name=name, defaults={"renewed_at": now})

    @classmethod
    def last_beat(cls, name):
        return cls.objects.filter(name=name).values_list("renewed_at", flat=True).first()
