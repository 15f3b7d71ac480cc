"""What keeps the pipeline running: leases held by one process at a time, heartbeats; and
the counters /metrics reports."""

from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
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


class MetricCounter(models.Model):
    """A running total for /metrics that every process adds to (gallery.metrics.Tally).

    Kept in the database, so the figures are right with any number of web and worker
    processes on any number of hosts, and a scrape reads a few dozen rows however many
    generations there are.
    """

    name = models.CharField(max_length=100)
    # Prometheus labels as `name=value` pairs joined by commas, in a fixed order, e.g.
    # "call=submit,kind=429"; the values are Darkroom's own words, never user input.
    labels = models.CharField(max_length=200, blank=True)
    value = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "labels"], name="metric_counter_unique")
        ]

    def __str__(self):
        return f"{self.name}{{{self.labels}}} {self.value:g}"

    @classmethod
    def add(cls, amounts):
        """Add each of `amounts` ({(name, labels): amount}) to its counter."""
        for (name, labels), amount in amounts.items():
            rows = cls.objects.filter(name=name, labels=labels)
            if rows.update(value=F("value") + amount):
                continue
            try:
                with transaction.atomic():
                    cls.objects.create(name=name, labels=labels, value=amount)
            except IntegrityError:  # another process created it a moment ago
                rows.update(value=F("value") + amount)


class Throttle(models.Model):
    """How many attempts one key (hashed) made under one throttle rule in its current
    window (gallery/throttles.py decides; this only stores)."""

    scope = models.CharField(max_length=50)
    key_hash = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=0)
    resets_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Also the index every take() uses.
            models.UniqueConstraint(fields=["scope", "key_hash"], name="throttle_once_per_key")
        ]
        indexes = [
            # purge(): windows that ended.
            models.Index(fields=["resets_at"], name="throttle_resets_at")
        ]

    def __str__(self):
        return f"{self.scope} {self.key_hash[:8]}: {self.count} until {self.resets_at:%H:%M}"


class Sighting(models.Model):
    """Something requests showed that an operator should hear of from `manage.py check
    --deploy`, which sees no requests itself: when any process, on any host, last saw it
    (gallery/proxy.py: X-Forwarded-For while no proxy is trusted)."""

    name = models.CharField(max_length=50, primary_key=True)
    last_seen_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} (last seen {self.last_seen_at:%Y-%m-%d %H:%M})"

    @classmethod
    def note(cls, name):
        cls.objects.update_or_create(name=name, defaults={"last_seen_at": timezone.now()})

    @classmethod
    def last_seen(cls, name, within):
        """When `name` was last seen, if within the last `within` (a timedelta), else None."""
        recent = cls.objects.filter(name=name, last_seen_at__gte=timezone.now() - within)
        return recent.values_list("last_seen_at", flat=True).first()
