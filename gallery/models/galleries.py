"""Galleries: where generations are kept, and who may see and fill them.

Who may do what with a gallery is decided here, once, in SQL: `visible_to(user)` is the
rule every page, file, zip and list asks (through gallery/views/access.py), and it
annotates each row with the caller's `Role` in that gallery, so a view or template asks
`gallery.role.can_manage` instead of re-deriving the rule. Generations and images reach
the same rule through their gallery (`gallery_visible_to`, `role_in_gallery` with a path).

- owner (made it): everything; rename, delete, members, visibility, share links
- contributor (added by the owner): see it; generate into it; move or delete own work
- viewer (added by the owner): see it, open and download its images and its zip
- team (anyone in the team, when it is opened to the team): as a viewer
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import Case, Exists, F, Func, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce

from gallery.models.accounts import is_team_member, team_members_q


class Role(models.TextChoices):
    """What one person may do with one gallery (see the table above)."""

    OWNER = "owner", "Owner"
    CONTRIBUTOR = "contributor", "Contributor"
    VIEWER = "viewer", "Viewer"
    TEAM = "team", "Team"

    @property
    def can_contribute(self):
        """Generate into the gallery, and move or delete what one made there."""
        return self in (Role.OWNER, Role.CONTRIBUTOR)

    @property
    def can_manage(self):
        """Rename, delete, members, visibility, share links, its budget; remove anyone's
        generations."""
        return self is Role.OWNER

    @property
    def is_member(self):
        return self in (Role.CONTRIBUTOR, Role.VIEWER)

    def may_rerun(self, made_it):
        """Retry or cancel a generation here: only who made it (it is their quota), while
        they may still add to the gallery."""
        return made_it and self.can_contribute

    def may_remove(self, made_it):
        """Delete a generation here, or move it out: whoever manages the gallery, or who
        made it while they may still add to the gallery."""
        return self.can_manage or (made_it and self.can_contribute)

    @classmethod
    def having(cls, right):
        """The roles that have `right` (a property above, e.g. "can_manage")."""
        return [role for role in cls if getattr(role, right)]


# The roles a membership row can hold; owner and team follow from the gallery itself.
MEMBER_ROLES = [(Role.VIEWER.value, "Viewer"), (Role.CONTRIBUTOR.value, "Contributor")]


def _prefix(path):
    return f"{path}__" if path else ""


def gallery_visible_to(user, path=""):
    """The one visibility rule as a Q, for galleries (`path=""`) or for rows that reach a
    gallery through `path` ("gallery" from a generation, "generation__gallery" from an
    image): its owner, its members, and the team when it is opened to the team."""
    if not user.is_authenticated:
        return Q(pk__in=[])
    prefix = _prefix(path)
    member = GalleryMember.objects.filter(gallery=OuterRef(f"{prefix}pk"), user=user)
    # accounts.is_team_member, in the same query: active, and not waiting for approval.
    in_team = get_user_model().objects.filter(team_members_q(), pk=user.pk)
    open_to_them = Q(**{f"{prefix}visibility": Gallery.Visibility.TEAM}) & Q(Exists(in_team))
    return Q(**{f"{prefix}owner": user}) | Q(Exists(member)) | open_to_them


def holding(user, roles, path=""):
    """Where `user` holds one of `roles` in the gallery at `path`, as a Q: the rights of a
    Role, in SQL (galleries a person manages are `holding(user, Role.having("can_manage"))`)."""
    prefix = _prefix(path)
    where = Q(pk__in=[])
    if Role.OWNER in roles:
        where |= Q(**{f"{prefix}owner": user})
    if member_roles := [role.value for role in roles if role.is_member]:
        member = GalleryMember.objects.filter(
            gallery=OuterRef(f"{prefix}pk"), user=user, role__in=member_roles
        )
        where |= Q(Exists(member))
    if Role.TEAM in roles:
        where |= gallery_visible_to(user, path) & ~holding(
            user, [Role.OWNER, Role.CONTRIBUTOR, Role.VIEWER], path
        )
    return where


def role_in_gallery(user, path=""):
    """The caller's Role in the gallery at `path`, as SQL. Only meaningful on rows that
    `gallery_visible_to(user, path)` let through: whoever is neither owner nor member
    sees the gallery because it is open to the team."""
    prefix = _prefix(path)
    member_role = GalleryMember.objects.filter(gallery=OuterRef(f"{prefix}pk"), user=user).values(
        "role"
    )[:1]
    return Case(
        When(**{f"{prefix}owner": user}, then=Value(Role.OWNER.value)),
        default=Coalesce(Subquery(member_role), Value(Role.TEAM.value)),
        output_field=models.CharField(),
    )


class GalleryQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The galleries `user` may see, each with `caller_role`: their Role in it."""
        return self.filter(gallery_visible_to(user)).annotate(caller_role=role_in_gallery(user))

    def editable_by(self, user):
        """The galleries `user` may generate into: their own and those they contribute to,
        each with `caller_role`. (Where their Role can contribute, in SQL: a third cheaper
        to build than filtering visible_to on the role, and built for every Generate.)"""
        contributing = Role.having("can_contribute")
        return self.filter(holding(user, contributing)).annotate(caller_role=role_in_gallery(user))

    def owned_by(self, user):
        """The galleries `user` made: the galleries page's "Your galleries"."""
        return self.filter(owner=user).annotate(caller_role=Value(Role.OWNER.value))

    def managed_by(self, user):
        """The galleries `user` may manage (rename, delete, members, visibility, share
        links, budget), as their Role says. An account waiting for approval manages none
        yet: it would otherwise share, or open to everyone, before an operator let it in."""
        if not is_team_member(user):
            return self.none()
        managing = Role.having("can_manage")
        return self.filter(holding(user, managing)).annotate(caller_role=role_in_gallery(user))

    def shared_with(self, user):
        """Other people's galleries that `user` is a member of."""
        return self.visible_to(user).filter(members__user=user)

    def shared_by(self, user):
        """The galleries `user` made and shares: with members, or opened to the team."""
        members = GalleryMember.objects.filter(gallery=OuterRef("pk"))
        opened = Q(visibility=Gallery.Visibility.TEAM)
        return self.owned_by(user).filter(Q(Exists(members)) | opened)

    def open_to_team(self, user):
        """Other people's galleries opened to the team, that `user` is no member of."""
        return self.visible_to(user).filter(caller_role=Role.TEAM.value)

    def with_counts(self, latest=0):
        """Each gallery with `generation_count`, `image_count` (the images its page shows),
        `cover_image_id` (its newest image) and, with `latest`, `latest_1` ... (the pks of
        its next newest images, up to `latest` in all with the cover; Gallery.latest_image_ids).

        The counts are the gallery's own tallies (Gallery.kept_generations, shown_images,
        kept by `recount`), the newest images a subquery each that walks the
        `generation_gallery_newest` index a step further: a page of galleries costs the
        same whether they hold ten images or ten thousand. Whatever the galleries' pages
        hide (Image.objects.shown: the trash, unfinished work) is left out here too.
        """
        from gallery.models.generations import Image

        def newest(offset):
            shown = Image.objects.in_gallery(OuterRef("pk"))
            return Subquery(shown.values("pk")[offset : offset + 1])

        galleries = self.annotate(
            generation_count=F("kept_generations"),
            image_count=F("shown_images"),
            cover_image_id=newest(0),
        )
        if latest:
            # One subquery per place (offset 0, 1, ...): each walks the same index a step
            # further, where a window over the gallery would number all of its images.
            places = {f"latest_{n}": newest(n) for n in range(1, latest)}
            galleries = galleries.annotate(**places)
        return galleries

    def recount(self):
        """Count these galleries' kept generations and shown images again, in one UPDATE.

        Called wherever generations enter, leave, finish or go to the trash in bulk
        (GenerationQuerySet.move_to_trash/restore, bulk moves, a gallery's deletion, the
        pipeline storing images; gallery/signals.py for rows saved or deleted one at a
        time); the daily trash task recounts every gallery, so a tally that some future
        path forgets is right again within a day. It reads the gallery's rows through
        the (gallery, status, trashed_at) index: the cost is paid on a write, not on
        each page that shows a count."""
        from gallery.models.generations import Generation, Image

        generations = Generation.objects.kept().filter(gallery=OuterRef("pk"))
        images = Image.objects.shown().filter(generation__gallery=OuterRef("pk"))
        return self.order_by().update(
            kept_generations=_count(generations), shown_images=_count(images)
        )


def _count(queryset):
    """COUNT(*) of `queryset` as a scalar subquery (no GROUP BY: one row, or 0)."""
    counted = queryset.order_by().annotate(n=Func("pk", function="COUNT")).values("n")
    return Coalesce(Subquery(counted), 0)


def recount_galleries(ids):
    """Gallery.objects.filter(pk__in=ids).recount(), for the ids that are not None."""
    ids = {pk for pk in ids if pk is not None}
    if ids:
        Gallery.objects.filter(pk__in=ids).recount()


class Gallery(models.Model):
    class Visibility(models.TextChoices):
        PRIVATE = "private", "Only me and the people I add"
        TEAM = "team", "Everyone in the team can see it"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="galleries"
    )
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    # Every generation into the gallery, by any member, counts against it (gallery/spend.py).
    monthly_budget = models.DecimalField(
        "budget per month",
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Estimated spend this gallery may reach each calendar month, whoever "
        "generates into it, in the price table's currency (USD by default). Empty: no limit.",
    )
    # Tallies the Galleries and Team pages show (GalleryQuerySet.recount keeps them): its
    # generations not in the trash, and the images of those that completed.
    kept_generations = models.PositiveIntegerField(default=0, editable=False)
    shown_images = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GalleryQuerySet.as_manager()

    class Meta:
        ordering = ["-is_default", "name"]
        verbose_name_plural = "galleries"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="gallery_unique_name_per_owner"),
            # Exactly one default gallery per user: new generations land there.
            models.UniqueConstraint(
                fields=["owner"], condition=Q(is_default=True), name="gallery_one_default_per_owner"
            ),
        ]
        indexes = [
            # visible_to's "open to the team" branch, for the Team page and every lookup.
            models.Index(fields=["visibility"], name="gallery_visibility"),
        ]

    def __str__(self):
        return self.name

    @property
    def role(self):
        """The caller's Role, on a gallery found through visible_to/owned_by."""
        return Role(self.caller_role)

    @property
    def latest_image_ids(self):
        """Its newest images' pks, newest first (GalleryQuerySet.with_counts(latest=...))."""
        ids, n = [self.cover_image_id], 1
        while hasattr(self, f"latest_{n}"):
            ids.append(getattr(self, f"latest_{n}"))
            n += 1
        return [pk for pk in ids if pk is not None]

    @property
    def is_open_to_team(self):
        return self.visibility == self.Visibility.TEAM

    @classmethod
    def default_for(cls, user):
        gallery, _ = cls.objects.get_or_create(
            owner=user, is_default=True, defaults={"name": "My images"}
        )
        return gallery

    def add_member(self, user, role, *, added_by):
        return GalleryMember.objects.create(gallery=self, user=user, role=role, added_by=added_by)

    def remove(self, *, keep_images):
        """Delete this gallery, its share links and memberships. Its generations (whoever
        made them) move to the owner's default gallery: with keep_images as they are;
        without, into the owner's trash (those still running are cancelled first, so
        nothing goes on spending out of sight), to be restored there or removed for good
        after TRASH_DAYS."""
        if self.is_default:
            raise ValueError("the default gallery can't be deleted: new images land there")
        generations = self.generations.all()
        Generation = generations.model  # generations.py imports this module
        with transaction.atomic():
            if not keep_images:
                for running in generations.filter(status__in=Generation.CANCELLABLE):
                    running.cancel()
                generations.move_to_trash()
            default = Gallery.default_for(self.owner)
            generations.update(gallery=default)
            self.delete()
            Gallery.objects.filter(pk=default.pk).recount()


class GalleryMember(models.Model):
    """A teammate the owner added to a gallery, as viewer or contributor.

    Deleting the row is the whole of removing someone: every lookup asks visible_to on
    each request, so pages, files and zips answer 404 from the next request on.
    """

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gallery_memberships"
    )
    role = models.CharField(max_length=16, choices=MEMBER_ROLES, default=Role.VIEWER.value)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]
        verbose_name = "gallery member"
        constraints = [
            # Also the index visible_to's EXISTS (gallery, user) lookup uses.
            models.UniqueConstraint(fields=["gallery", "user"], name="gallery_member_once"),
        ]

    def __str__(self):
        return f"{self.user} ({self.get_role_display().lower()}) in {self.gallery}"
