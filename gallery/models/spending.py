"""The usage ledger: what was asked of the provider, append-only, with the month totals
kept beside it; and the team's monthly budget.

- A request to the provider that may be billed is a SPEND entry, written in the same
  transaction that claims the submit (`GenerationQuerySet.claim_for_submit`). A retry is
  sent again, so it is another entry.
- A request the provider reports FAILED, or that the gateway refused before accepting it,
  gets a REFUND entry for its SPEND entry (the provider charges for images it delivers); a
  cancel gets none (the gateway has no cancel call: the images may be made and billed).
- Nothing else writes here, and nothing rewrites an entry: deleting, moving or trashing a
  generation, removing a member, deleting a gallery or an account leave every entry as it
  is (their references are SET_NULL, and each entry keeps the names it was made under).

`UsageTotal` keeps each month's sum per person, per gallery and for the whole team,
changed in the same transaction as the entries, so a limit check reads one row however
long someone's history is. A request that is not sent yet is a reservation: a PENDING
generation; gallery/spend.py counts those with the totals whenever it checks a limit.
"""

from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from gallery.models.galleries import Gallery

MONEY = {"max_digits": 12, "decimal_places": 4}


def price_per_image(quality, image_size):
    """The estimated price of one image (settings.PRICE_TABLE), in the table's currency."""
    return Decimal(str(settings.PRICE_TABLE[quality][image_size]))


def month_of(moment=None):
    """The first day of `moment`'s month, in the instance's time zone (settings.TIME_ZONE):
    the month an entry counts in."""
    return timezone.localtime(moment).date().replace(day=1)


class UsageEntryQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The lines `user` may read: what they asked for, and what was spent in galleries
        they manage (their budgets); staff read everything."""
        if user.is_staff:
            return self
        managed = Gallery.objects.managed_by(user).values("pk")
        return self.filter(Q(user=user) | Q(gallery__in=managed))


class UsageEntry(models.Model):
    """One line of the ledger (see the module docstring). Never changed once written."""

    class Kind(models.TextChoices):
        SPEND = "spend", "Sent to the provider"
        REFUND = "refund", "Given back"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    # The month it counts in: its own for a spend, its spend's for a refund (a generation
    # sent on the 31st and failed on the 1st gives back what the 31st's month counted).
    month = models.DateField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="usage_entries",
        verbose_name="asked by",
    )
    username = models.CharField(max_length=150)
    generation = models.ForeignKey(
        "gallery.Generation", on_delete=models.SET_NULL, null=True, related_name="usage_entries"
    )
    gallery = models.ForeignKey(
        Gallery, on_delete=models.SET_NULL, null=True, related_name="usage_entries"
    )
    gallery_name = models.CharField(max_length=100)
    # The API token it was asked through, if any (its own monthly cap counts these).
    api_token = models.ForeignKey(
        "gallery.ApiToken",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_entries",
        verbose_name="API token",
    )
    quality = models.CharField(max_length=16)
    image_size = models.CharField(max_length=16)
    unit_price = models.DecimalField(**MONEY)
    # Negative on a refund: a month's usage is the plain sum of its entries.
    images = models.IntegerField()
    cost = models.DecimalField("estimated cost", **MONEY)
    refund_of = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="refund"
    )
    note = models.CharField(max_length=200, blank=True)

    objects = UsageEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "usage entry"
        verbose_name_plural = "usage ledger"
        indexes = [
            # The Usage page and its CSV: one person's, one gallery's, everyone's months.
            models.Index(fields=["user", "month"], name="usage_entry_user_month"),
            models.Index(fields=["gallery", "month"], name="usage_entry_gallery_month"),
            models.Index(fields=["month", "created_at"], name="usage_entry_month"),
        ]

    def __str__(self):
        sign = "" if self.kind == self.Kind.SPEND else "refund of "
        return f"{self.username}: {sign}{abs(self.images)} image(s), ${abs(self.cost):.3f}"

    @classmethod
    def record_spends(cls, generations, now=None):
        """A SPEND entry for each of `generations`, just claimed for submitting, and the
        totals with them. Run it inside the claim's transaction."""
        now = now or timezone.now()
        entries = [cls._for(generation, cls.Kind.SPEND, now) for generation in generations]
        cls.objects.bulk_create(entries)
        UsageTotal.add(entries)
        return entries

    @classmethod
    def record_refund(cls, generation, note, now=None):
        """Give back `generation`'s latest unrefunded spend, if it has one (else nothing:
        it was never sent). Run it inside the transaction that records why."""
        spend = (
            cls.objects.filter(generation=generation, kind=cls.Kind.SPEND, refund__isnull=True)
            .order_by("-created_at", "-id")
            .first()
        )
        if spend is None:
            return None
        refund = cls(
            kind=cls.Kind.REFUND,
            created_at=now or timezone.now(),
            month=spend.month,
            user_id=spend.user_id,
            username=spend.username,
            generation_id=spend.generation_id,
            gallery_id=spend.gallery_id,
            gallery_name=spend.gallery_name,
            api_token_id=spend.api_token_id,
            quality=spend.quality,
            image_size=spend.image_size,
            unit_price=spend.unit_price,
            images=-spend.images,
            cost=-spend.cost,
            refund_of=spend,
            note=note[:200],
        )
        refund.save()
        UsageTotal.add([refund])
        return refund

    @classmethod
    def _for(cls, generation, kind, now):
        unit = price_per_image(generation.quality, generation.image_size)
        return cls(
            kind=kind,
            created_at=now,
            month=month_of(now),
            user_id=generation.owner_id,
            username=generation.owner.get_username(),
            generation_id=generation.pk,
            gallery_id=generation.gallery_id,
            gallery_name=generation.gallery.name,
            api_token_id=generation.api_token_id,
            quality=generation.quality,
            image_size=generation.image_size,
            unit_price=unit,
            images=generation.num_images,
            cost=unit * generation.num_images,
        )


class UsageTotalQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The totals `user` may read: their own months and those of galleries they
        manage; staff read everyone's and the team's."""
        if user.is_staff:
            return self
        mine = Q(scope=UsageTotal.Scope.PERSON, user=user)
        managed = Gallery.objects.managed_by(user).values("pk")
        return self.filter(mine | Q(scope=UsageTotal.Scope.GALLERY, gallery__in=managed))


class UsageTotal(models.Model):
    """A month's sum of the ledger for one person, one gallery, one API token or the whole
    team, kept in step with the entries (UsageTotal.add, in the entries' transaction). A
    limit check locks the rows of the limits it checks (gallery/spend.py)."""

    class Scope(models.TextChoices):
        PERSON = "person", "Person"
        GALLERY = "gallery", "Gallery"
        TEAM = "team", "Team"
        TOKEN = "token", "API token"

    scope = models.CharField(max_length=8, choices=Scope.choices)
    month = models.DateField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    gallery = models.ForeignKey(Gallery, on_delete=models.SET_NULL, null=True, related_name="+")
    api_token = models.ForeignKey(
        "gallery.ApiToken", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    images = models.IntegerField(default=0)
    cost = models.DecimalField("estimated cost", default=Decimal(0), **MONEY)

    objects = UsageTotalQuerySet.as_manager()

    # Scope, then the person's, gallery's or token's id, then the month: as add() sorts
    # its keys (a row has at most one of the three ids).
    ORDER = ("scope", "user_id", "gallery_id", "api_token_id", "month")

    class Meta:
        constraints = [
            # One row per person, gallery and the team each month; also the lookups' index.
            models.UniqueConstraint(
                fields=["user", "month"], condition=Q(scope="person"), name="usage_total_person"
            ),
            models.UniqueConstraint(
                fields=["gallery", "month"],
                condition=Q(scope="gallery"),
                name="usage_total_gallery",
            ),
            models.UniqueConstraint(
                fields=["month"], condition=Q(scope="team"), name="usage_total_team"
            ),
            models.UniqueConstraint(
                fields=["api_token", "month"],
                condition=Q(scope="token"),
                name="usage_total_token",
            ),
        ]
        indexes = [
            # The Usage page: every person's and gallery's months, newest first.
            models.Index(fields=["scope", "month"], name="usage_total_scope_month"),
        ]

    def __str__(self):
        return f"{self.scope} {self.month:%Y-%m}: {self.images} images, ${self.cost:.3f}"

    @staticmethod
    def key(scope, month, *, user_id=None, gallery_id=None, api_token_id=None):
        """The row's identity as filter arguments."""
        key = {"scope": scope, "month": month}
        if column := UsageTotal._ID_COLUMN[scope]:
            ids = {"user_id": user_id, "gallery_id": gallery_id, "api_token_id": api_token_id}
            key[column] = ids[column]
        return key

    @staticmethod
    def identity(key):
        """(scope, month, user_id, gallery_id, api_token_id) of a key() or of a row's fields."""
        return tuple(
            key.get(name) for name in ("scope", "month", "user_id", "gallery_id", "api_token_id")
        )

    @classmethod
    def add(cls, entries):
        """Add `entries` to their person's, gallery's and the team's month totals.

        Rows are changed in one order everywhere (`ORDER`), the order a limit check locks
        them in too, so two transactions never wait on each other in a circle (PostgreSQL
        would abort one). One upsert a scope, prepared once and run for each of its rows: a
        claim adds a burst's entries while every Generate waits for the lock it holds."""
        sums = defaultdict(lambda: [0, Decimal(0)])
        for entry in entries:
            scopes = [(cls.Scope.TEAM, 0)]
            if entry.user_id:
                scopes.append((cls.Scope.PERSON, entry.user_id))
            if entry.gallery_id:
                scopes.append((cls.Scope.GALLERY, entry.gallery_id))
            if entry.api_token_id:
                scopes.append((cls.Scope.TOKEN, entry.api_token_id))
            for scope, pk in scopes:
                sums[scope, pk, entry.month][0] += entry.images
                sums[scope, pk, entry.month][1] += entry.cost
        by_scope = defaultdict(list)
        for (scope, pk, month), (images, cost) in sorted(sums.items()):
            by_scope[scope].append((pk, month, images, cost))
        month_field, cost_field = cls._meta.get_field("month"), cls._meta.get_field("cost")
        with connection.cursor() as cursor:
            for scope, rows in sorted(by_scope.items()):
                column = cls._ID_COLUMN[scope]
                cursor.executemany(
                    cls._add_sql(scope),
                    [
                        (
                            *([pk] if column else []),
                            month_field.get_db_prep_value(month, connection),
                            images,
                            cost_field.get_db_prep_value(cost, connection),
                        )
                        for pk, month, images, cost in rows
                    ],
                )

    # The column that names a row's person, gallery or token; the team's has none.
    _ID_COLUMN = {
        Scope.PERSON: "user_id",
        Scope.GALLERY: "gallery_id",
        Scope.TOKEN: "api_token_id",
        Scope.TEAM: None,
    }

    @classmethod
    def _add_sql(cls, scope):
        """INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL alike) of one row of
        `scope`: created with the amounts, or the amounts added to it. The conflict is on
        the scope's unique constraint (a partial index: its predicate, a constant of ours,
        is written out for PostgreSQL to match it)."""
        quote = connection.ops.quote_name
        table = quote(cls._meta.db_table)
        column = cls._ID_COLUMN[scope]
        columns = [*([column] if column else []), "month", "images", "cost"]
        names = ", ".join(quote(name) for name in ["scope", *columns])
        values = ", ".join(["%s"] * len(columns))
        target = ", ".join(quote(name) for name in columns[:-2])
        scope_column, images, cost = quote("scope"), quote("images"), quote("cost")
        # Nothing here comes from a request: names from the model, the scope a constant.
        return (
            f"INSERT INTO {table} ({names}) VALUES ('{scope.value}', {values}) "  # noqa: S608
            f"ON CONFLICT ({target}) WHERE {scope_column} = '{scope.value}' DO UPDATE SET "
            f"{images} = {table}.{images} + excluded.{images}, "
            f"{cost} = {table}.{cost} + excluded.{cost}"
        )

    @classmethod
    def locked(cls, keys):
        """The rows of `keys` (each from `key()`), created if missing, locked until the
        transaction ends (PostgreSQL; SQLite's IMMEDIATE transaction holds the whole
        database already), locked in `add()`'s order. Must run inside transaction.atomic()."""
        rows = [cls(**key) for key in keys]
        cls.objects.bulk_create(rows, ignore_conflicts=True)
        match = Q(pk__in=[])
        for key in keys:
            match |= Q(**key)
        found = cls.objects.select_for_update().filter(match).order_by(*cls.ORDER)
        by_key = {cls.identity(vars(row)): row for row in found}
        return [by_key[cls.identity(key)] for key in keys]


class TeamBudget(models.Model):
    """The whole team's monthly budget, in the price table's currency: one row, set by
    staff in admin and read on every request, so a change needs no restart."""

    monthly_budget = models.DecimalField(
        "team budget per month",
        null=True,
        blank=True,
        help_text="Estimated spend the whole team may reach each calendar month, in the price "
        "table's currency (USD by default). Empty: no team-wide limit.",
        **MONEY,
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "team budget"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="team_budget_one_row")]

    def __str__(self):
        if self.monthly_budget is None:
            return "No team-wide limit"
        return f"${self.monthly_budget:.2f} a month for the team"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls):
        """The budget in force (None: no team-wide limit)."""
        return cls.objects.filter(pk=1).values_list("monthly_budget", flat=True).first()
