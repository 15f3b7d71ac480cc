"""Operators' screens: find anything, fix failed generations, revoke links, control spend.

List pages stay one page of queries however many rows there are: related rows come
through list_select_related, counts and costs are annotated, and a generation's preview
is its first image's id from a subquery. The provider's answer is read-only: status
changes only through the state machine's methods (the retry and cancel actions).
Thumbnails come from a staff-only view here, because the site's media views serve owners.
"""

import json
from functools import wraps

from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import (
    BooleanField,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
)
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import ngettext
from django_q.models import Failure, Success

from gallery import spend
from gallery.identity import mail
from gallery.models import (
    AccountApproval,
    ApiToken,
    Gallery,
    GalleryMember,
    Generation,
    Image,
    Invitation,
    OidcIdentity,
    Quota,
    ShareLink,
    TeamBudget,
    UsageEntry,
    awaiting_approval_q,
    team_members_q,
)
from gallery.tasks import enqueue_submit

S = Generation.Status
STATUS_BADGES = {
    S.COMPLETED: "ok",
    S.FAILED: "danger",
    S.CANCELLED: "neutral",
}


class DarkroomAdminMixin:
    class Media:
        css = {"all": ["css/admin.css"]}


NO_THUMBNAIL = mark_safe('<span class="dr-thumb dr-thumb--empty" aria-hidden="true"></span>')  # noqa: S308


def thumbnail_tag(image_id, alt):
    if image_id is None:
        return NO_THUMBNAIL
    url = reverse("admin:gallery_image_thumbnail", args=[image_id])
    return format_html(
        '<img class="dr-thumb" src="{}" alt="{}" loading="lazy" width="48" height="48">', url, alt
    )


def badge(text, kind):
    return format_html('<span class="dr-badge dr-badge--{}">{}</span>', kind, text)


def shorten(text, limit=60):
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def money(amount):
    return f"${amount:.3f}"


def pretty_json(value):
    return format_html('<pre class="dr-json">{}</pre>', json.dumps(value, indent=2))


# -- generations ----------------------------------------------------------------------------


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["preview", "index", "dimensions", "content_type", "file_size", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Preview")
    def preview(self, image):
        return thumbnail_tag(image.pk, f"Image {image.index + 1}")

    @admin.display(description="Size")
    def dimensions(self, image):
        return f"{image.width}×{image.height}"

    @admin.display(description="Bytes")
    def file_size(self, image):
        return filesizeformat(image.size_bytes)


@admin.register(Generation)
class GenerationAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    list_display = [
        "preview",
        "short_prompt",
        "owner",
        "status_badge",
        "size",
        "quality_code",
        "images",
        "created",
        "processing_time",
        "cost",
    ]
    list_display_links = ["preview", "short_prompt"]
    list_select_related = ["owner"]
    list_filter = [
        "status",
        "quality",
        "image_size",
        "output_format",
        ("created_at", admin.DateFieldListFilter),
        ("trashed_at", admin.EmptyFieldListFilter),  # in the trash: "Not empty"
    ]
    search_fields = ["prompt", "owner__username", "owner__email", "request_id"]
    search_help_text = "Prompt, owner's user name or email, or the provider's request id."
    date_hierarchy = "created_at"
    actions = ["retry_generations", "cancel_generations"]
    inlines = [ImageInline]
    fieldsets = [
        (
            "Request",
            {
                "fields": [
                    "owner",
                    "gallery",
                    "api_token",
                    "prompt",
                    ("image_size", "quality", "num_images"),
                    ("background", "output_format"),
                    "cost",
                ]
            },
        ),
        (
            "Status",
            {
                "fields": [
                    "status_badge",
                    "error",
                    "error_detail",
                    "request_id",
                    ("queue_position", "estimated_wait_minutes"),
                    "processing_time",
                ]
            },
        ),
        ("Provider's answer", {"fields": ["metadata", "provider_image_list"]}),
        (
            "Timeline",
            {
                "fields": [
                    ("created_at", "requested_at", "submitted_at", "started_at"),
                    ("provider_completed_at", "completed_at", "failed_at", "cancelled_at"),
                    ("trashed_at", "updated_at"),
                ]
            },
        ),
        (
            "Pipeline bookkeeping",
            {
                "classes": ["collapse"],
                "fields": ["uid", ("submit_count", "poll_count"), "next_action_at", "claimed_at"],
            },
        ),
    ]
    # Nothing here is edited: it is the request as sent and the provider's answer, and a
    # status only changes through the actions below. (Favourites are each person's own.)
    readonly_fields = [
        "owner",
        "gallery",
        "api_token",
        "prompt",
        "image_size",
        "quality",
        "num_images",
        "background",
        "output_format",
        "cost",
        "status_badge",
        "error",
        "error_detail",
        "request_id",
        "queue_position",
        "estimated_wait_minutes",
        "processing_time",
        "metadata",
        "provider_image_list",
        "created_at",
        "requested_at",
        "submitted_at",
        "started_at",
        "provider_completed_at",
        "completed_at",
        "failed_at",
        "cancelled_at",
        "trashed_at",
        "updated_at",
        "uid",
        "submit_count",
        "poll_count",
        "next_action_at",
        "claimed_at",
    ]

    def has_add_permission(self, request):
        # Generations start in the studio, which checks the quota and enqueues them.
        return False

    def get_queryset(self, request):
        first_image = Image.objects.filter(generation=OuterRef("pk")).order_by("index")
        return (
            super()
            .get_queryset(request)
            .annotate(
                image_count=Count("images"),
                first_image_id=Subquery(first_image.values("pk")[:1]),
                ledger_cost=Subquery(
                    UsageEntry.objects.filter(generation=OuterRef("pk"))
                    .order_by()
                    .values("generation")
                    .annotate(net=Sum("cost"))
                    .values("net"),
                    output_field=DecimalField(max_digits=12, decimal_places=4),
                ),
            )
        )

    @admin.display(description="Preview")
    def preview(self, generation):
        return thumbnail_tag(generation.first_image_id, "")

    @admin.display(description="Prompt", ordering="prompt")
    def short_prompt(self, generation):
        return shorten(generation.prompt)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, generation):
        return badge(generation.get_status_display(), STATUS_BADGES.get(generation.status, "info"))

    # Short forms of the choices: the list has many columns to fit.
    @admin.display(description="Size", ordering="image_size")
    def size(self, generation):
        return generation.image_size.replace("x", "×")

    @admin.display(description="Quality", ordering="quality")
    def quality_code(self, generation):
        return generation.quality

    @admin.display(description="Created", ordering="created_at")
    def created(self, generation):
        return dateformat.format(timezone.localtime(generation.created_at), "Y-m-d H:i")

    @admin.display(description="Images", ordering="image_count")
    def images(self, generation):
        return f"{generation.image_count} of {generation.num_images}"

    @admin.display(description="Processing", ordering="processing_time_ms")
    def processing_time(self, generation):
        if generation.processing_time_ms is None:
            return "—"
        return f"{generation.processing_time_ms / 1000:.1f} s"

    @admin.display(description="Est. cost", ordering="ledger_cost")
    def cost(self, generation):
        # What the usage ledger counts for it: every submit, less what the provider's
        # failures gave back; a generation never sent has no entry.
        return "—" if generation.ledger_cost is None else money(generation.ledger_cost)

    @admin.display(description="Metadata")
    def metadata(self, generation):
        return pretty_json(generation.provider_metadata)

    @admin.display(description="Images as the provider listed them")
    def provider_image_list(self, generation):
        return pretty_json(generation.provider_images)

    @admin.action(
        description="Retry selected failed or cancelled generations", permissions=["change"]
    )
    def retry_generations(self, request, queryset):
        # A retry is a new, billable request: held to every limit, as the owner's own is.
        retried = 0
        refusals = []
        for generation in queryset.select_related("owner", "gallery"):
            if not generation.can_retry:
                continue
            try:
                if spend.retry(generation):
                    enqueue_submit(generation)
                    retried += 1
            except spend.Refused as refused:
                refusals.append(f"{generation.owner}: {refused.message}")
        self._report(
            request, retried, queryset.count(), "re-queued", "only failed or cancelled ones retry"
        )
        for refusal in refusals:
            self.message_user(request, f"Not retried. {refusal}", messages.ERROR)

    @admin.action(description="Cancel selected unfinished generations", permissions=["change"])
    def cancel_generations(self, request, queryset):
        cancelled = 0
        for generation in queryset:
            # cancel() is False when the generation moved on meanwhile (say, it finished).
            if generation.can_cancel and generation.cancel():
                cancelled += 1
        self._report(
            request, cancelled, queryset.count(), "cancelled", "finished or saving its images"
        )

    def _report(self, request, done, selected, verb, why_others_were_skipped):
        self.message_user(
            request,
            ngettext("%(n)d generation %(verb)s.", "%(n)d generations %(verb)s.", done)
            % {"n": done, "verb": verb},
            messages.SUCCESS if done else messages.WARNING,
        )
        if skipped := selected - done:
            self.message_user(
                request, f"{skipped} skipped: {why_others_were_skipped}.", messages.WARNING
            )


# -- images ---------------------------------------------------------------------------------


@admin.register(Image)
class ImageAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    list_display = [
        "preview",
        "generation_prompt",
        "owner",
        "dimensions",
        "content_type",
        "file_size",
        "created_at",
    ]
    list_select_related = ["generation__owner"]
    list_filter = ["content_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = [
        "generation__prompt",
        "generation__owner__username",
        "generation__owner__email",
        "generation__request_id",
    ]
    date_hierarchy = "created_at"
    fields = [
        "preview",
        "generation",
        "index",
        ("width", "height"),
        "content_type",
        "file_size",
        "original_name",
        "thumbnail_name",
        "created_at",
    ]
    readonly_fields = [
        "preview",
        "generation",
        "index",
        "width",
        "height",
        "content_type",
        "file_size",
        "original_name",
        "thumbnail_name",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        thumbnail = self.admin_site.admin_view(self.thumbnail_view)
        return [
            path("<int:pk>/thumbnail/", thumbnail, name="gallery_image_thumbnail"),
            *super().get_urls(),
        ]

    def thumbnail_view(self, request, pk):
        """The stored thumbnail, whoever owns it, for staff who may view images.

        admin_view only checks that the user is staff; the permission is checked here, as
        the change page does.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        image = get_object_or_404(Image, pk=pk)
        try:
            stream = image.thumbnail.open("rb")
        except FileNotFoundError:
            raise Http404("The thumbnail file is missing") from None
        response = FileResponse(stream, content_type="image/webp")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    @admin.display(description="Preview")
    def preview(self, image):
        return thumbnail_tag(image.pk, "")

    @admin.display(description="Prompt", ordering="generation__prompt")
    def generation_prompt(self, image):
        return f"{shorten(image.generation.prompt)} #{image.index + 1}"

    @admin.display(description="Owner", ordering="generation__owner__username")
    def owner(self, image):
        return image.generation.owner

    @admin.display(description="Size")
    def dimensions(self, image):
        return f"{image.width}×{image.height}"

    @admin.display(description="Bytes", ordering="size_bytes")
    def file_size(self, image):
        return filesizeformat(image.size_bytes)

    # Names, not the file fields themselves: those would link to MEDIA_URL, which is never
    # served (private media goes through views that check access).
    @admin.display(description="Original")
    def original_name(self, image):
        return image.original.name

    @admin.display(description="Thumbnail")
    def thumbnail_name(self, image):
        return image.thumbnail.name


# -- galleries and share links --------------------------------------------------------------


class ShareLinkState(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(state.value, state.label) for state in ShareLink.State]

    def queryset(self, request, queryset):
        now = timezone.now()
        used_up = Q(max_views__isnull=False, view_count__gte=F("max_views"))
        match self.value():
            case "live":
                return queryset.live(now).exclude(used_up)
            case "used_up":
                return queryset.live(now).filter(used_up)
            case "expired":
                return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ShareLink)
class ShareLinkAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "gallery",
        "owner",
        "state",
        "views",
        "expires_at",
        "revoked_at",
        "created_at",
    ]
    list_select_related = ["gallery__owner"]
    list_filter = [ShareLinkState, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["label", "gallery__name", "gallery__owner__username", "gallery__owner__email"]
    date_hierarchy = "created_at"
    actions = ["revoke_links"]
    # The token is a password for the gallery, and the link's password is stored hashed:
    # neither is shown here, only whether there is one.
    fields = [
        "gallery",
        "label",
        "state",
        "expires_at",
        "max_views",
        "view_count",
        "last_opened_at",
        "allow_downloads",
        "show_prompts",
        "password_protected",
        "revoked_at",
        "created_at",
    ]
    readonly_fields = [
        "gallery",
        "state",
        "view_count",
        "last_opened_at",
        "password_protected",
        "revoked_at",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Owner", ordering="gallery__owner__username")
    def owner(self, link):
        return link.gallery.owner

    @admin.display(description="State")
    def state(self, link):
        tone = {
            ShareLink.State.LIVE: "ok",
            ShareLink.State.USED_UP: "warn",
            ShareLink.State.EXPIRED: "warn",
            ShareLink.State.REVOKED: "neutral",
        }
        return badge(link.state.label, tone[link.state])

    @admin.display(description="Views", ordering="view_count")
    def views(self, link):
        if link.max_views is None:
            return link.view_count
        return f"{link.view_count} of {link.max_views}"

    @admin.display(description="Password", boolean=True)
    def password_protected(self, link):
        return bool(link.password)

    @admin.action(description="Revoke selected share links", permissions=["change"])
    def revoke_links(self, request, queryset):
        links = list(queryset.filter(revoked_at__isnull=True))
        for link in links:
            link.revoke()
        self.message_user(
            request,
            ngettext("%d share link revoked.", "%d share links revoked.", len(links)) % len(links),
            messages.SUCCESS,
        )


class ShareLinkInline(admin.TabularInline):
    model = ShareLink
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["label", "expires_at", "revoked_at", "view_count", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class GalleryMemberInline(admin.TabularInline):
    model = GalleryMember
    extra = 0
    fields = ["user", "role", "added_by", "created_at"]
    readonly_fields = ["added_by", "created_at"]
    autocomplete_fields = ["user"]


@admin.register(Gallery)
class GalleryAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "visibility",
        "is_default",
        "member_count",
        "generation_count",
        "live_links",
        "created_at",
    ]
    list_select_related = ["owner"]
    list_filter = ["visibility", "is_default", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "owner__username", "owner__email"]
    date_hierarchy = "created_at"
    fields = [
        "name",
        "owner",
        "visibility",
        "monthly_budget",
        "is_default",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["owner", "is_default", "created_at", "updated_at"]
    inlines = [GalleryMemberInline, ShareLinkInline]

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        live = Q(share_links__revoked_at__isnull=True) & (
            Q(share_links__expires_at__isnull=True) | Q(share_links__expires_at__gt=timezone.now())
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                generation_total=Count("generations", distinct=True),
                live_link_total=Count("share_links", filter=live, distinct=True),
                member_total=Count("members", distinct=True),
            )
        )

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, gallery):
        return gallery.member_total

    @admin.display(description="Generations", ordering="generation_total")
    def generation_count(self, gallery):
        return gallery.generation_total

    @admin.display(description="Live share links", ordering="live_link_total")
    def live_links(self, gallery):
        return gallery.live_link_total


# -- people: usage and quotas ---------------------------------------------------------------


class UsageColumns:
    """This month's images and estimated cost, from the usage ledger's month totals
    (gallery/spend.py): deleting a generation changes neither."""

    usage_prefix = ""

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**spend.usage_annotations(self.usage_prefix))

    @admin.display(description="Images this month", ordering="images_this_month")
    def images_this_month(self, obj):
        return obj.images_this_month

    @admin.display(description="Est. cost this month", ordering="cost_this_month")
    def cost_this_month(self, obj):
        return money(obj.cost_this_month)


@admin.register(Quota)
class QuotaAdmin(UsageColumns, DarkroomAdminMixin, admin.ModelAdmin):
    usage_prefix = "user__"
    list_display = ["user", "monthly_images", "images_this_month", "cost_this_month", "updated_at"]
    list_editable = ["monthly_images"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]


@admin.register(UsageEntry)
class UsageEntryAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    """The usage ledger, read-only: entries are written by the pipeline and never changed
    (gallery/models/spending.py). The CSV for finance is on the Usage page."""

    list_display = [
        "created_at",
        "kind_badge",
        "username",
        "gallery_name",
        "quality",
        "image_size",
        "images",
        "amount",
        "month",
        "generation_link",
    ]
    list_filter = ["kind", "month", "quality", "image_size"]
    search_fields = ["username", "gallery_name", "generation__prompt", "note"]
    date_hierarchy = "created_at"
    list_select_related = ["generation"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Kind", ordering="kind")
    def kind_badge(self, entry):
        kind = "info" if entry.kind == UsageEntry.Kind.SPEND else "ok"
        return badge(entry.get_kind_display(), kind)

    @admin.display(description="Est. cost", ordering="cost")
    def amount(self, entry):
        return money(entry.cost)

    @admin.display(description="Generation")
    def generation_link(self, entry):
        if entry.generation_id is None:
            return "deleted"
        url = reverse("admin:gallery_generation_change", args=[entry.generation_id])
        return format_html('<a href="{}">#{}</a>', url, entry.generation_id)


class ApiTokenState(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    """Staff see every token and revoke them; a token's secret is never stored, so none is
    shown. Tokens are made by their owners (the API tokens page) or `create_api_token`."""

    list_display = [
        "name",
        "user",
        "prefix",
        "access",
        "monthly_images",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [ApiTokenState, "access"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "user", "prefix", "access", "monthly_images", "gallery", "created_at"]
    fields += ["last_used_at", "revoked_at"]
    raw_id_fields = ["gallery"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        revoked = sum(token.revoke() for token in queryset.filter(revoked_at__isnull=True))
        self.message_user(
            request, ngettext("%d token revoked.", "%d tokens revoked.", revoked) % revoked
        )


@admin.register(TeamBudget)
class TeamBudgetAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    """The one team-wide budget: its change page is the list's only row."""

    list_display = ["__str__", "updated_at"]
    fields = ["monthly_budget", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request):
        return not TeamBudget.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False


class QuotaInline(admin.StackedInline):
    model = Quota
    can_delete = False
    fields = ["monthly_images"]


# -- people: approval, sign-in identities, invitations (gallery/identity/) ------------------


class ApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "approval"

    def lookups(self, request, model_admin):
        return [("waiting", "Waiting for approval"), ("approved", "Approved")]

    def queryset(self, request, queryset):
        match self.value():
            case "waiting":
                return queryset.filter(awaiting_approval_q(), is_active=True)
            case "approved":
                return queryset.filter(team_members_q())
        return queryset


class OidcIdentityInline(admin.TabularInline):
    model = OidcIdentity
    extra = 0
    fields = ["issuer", "subject", "created_at", "last_sign_in_at"]
    readonly_fields = fields
    verbose_name_plural = "Sign-ins with the identity provider"

    def has_add_permission(self, request, obj=None):
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class DarkroomUserAdmin(UsageColumns, DarkroomAdminMixin, UserAdmin):
    usage_prefix = ""
    list_display = [
        *UserAdmin.list_display,
        "approval_state",
        "images_this_month",
        "cost_this_month",
        "monthly_quota",
    ]
    list_filter = [ApprovalFilter, *UserAdmin.list_filter]
    list_select_related = ["quota", "approval"]
    inlines = [QuotaInline, OidcIdentityInline]
    actions = ["approve_accounts"]

    def get_inline_instances(self, request, obj=None):
        # The identity provider's sign-ins show only for people who have some.
        inlines = super().get_inline_instances(request, obj)
        if obj is None or not obj.oidc_identities.exists():
            inlines = [i for i in inlines if not isinstance(i, OidcIdentityInline)]
        return inlines

    @admin.display(description="Monthly quota", ordering="quota__monthly_images")
    def monthly_quota(self, user):
        quota = getattr(user, "quota", None)
        if quota is None or quota.monthly_images is None:
            return "—"
        return quota.monthly_images

    def get_queryset(self, request):
        waiting = ExpressionWrapper(awaiting_approval_q(), output_field=BooleanField())
        return super().get_queryset(request).annotate(is_waiting=waiting)

    @admin.display(description="Approval", ordering="is_waiting")
    def approval_state(self, user):
        return badge("Waiting", "warn") if user.is_waiting else badge("Approved", "ok")

    @admin.action(
        description="Approve selected accounts (they may generate)", permissions=["change"]
    )
    def approve_accounts(self, request, queryset):
        approved = AccountApproval.approve(queryset, by=request.user)
        self.message_user(
            request,
            ngettext("%d account approved.", "%d accounts approved.", approved) % approved
            if approved
            else "None of those accounts was waiting for approval.",
            messages.SUCCESS if approved else messages.WARNING,
        )


class InvitationState(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return Invitation.State.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        match self.value():
            case Invitation.State.PENDING:
                return queryset.pending(now)
            case Invitation.State.ACCEPTED:
                return queryset.filter(accepted_at__isnull=False)
            case Invitation.State.EXPIRED:
                return queryset.filter(accepted_at=None, revoked_at=None, expires_at__lte=now)
            case Invitation.State.REVOKED:
                return queryset.filter(accepted_at=None, revoked_at__isnull=False)
        return queryset


INVITATION_BADGES = {"pending": "info", "accepted": "ok", "expired": "warn", "revoked": "danger"}


@admin.register(Invitation)
class InvitationAdmin(DarkroomAdminMixin, admin.ModelAdmin):
    """Invitations are issued on the staff page (/accounts/invitations/), the one door that
    makes and mails them (gallery/identity/mail.invite): "Add" here leads there. The token
    exists only in the e-mail, never on a page."""

    list_display = ["email", "state_badge", "invited_by", "accepted_by", "expires_at", "created_at"]
    list_select_related = ["invited_by", "accepted_by"]
    list_filter = [InvitationState, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["email", "invited_by__username", "accepted_by__username"]
    actions = ["send_again", "revoke_invitations"]
    fields = ["email", "state_badge", "invited_by", "expires_at", "accepted_at", "accepted_by"]
    readonly_fields = [*fields]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return redirect("invitation_list")

    @admin.display(description="State")
    def state_badge(self, invitation):
        state = invitation.state
        return badge(Invitation.State(state).label, INVITATION_BADGES[state])

    @admin.action(
        description="Send a fresh link (7 more days; the old link stops working)",
        permissions=["change"],
    )
    def send_again(self, request, queryset):
        sent = 0
        for invitation in queryset.filter(accepted_at=None, revoked_at=None):
            token = invitation.renew()  # saved first: no transaction stays open while mailing
            try:
                mail.send_invitation(request, invitation, token)
            except mail.MailNotSent:
                continue
            sent += 1
        self.message_user(
            request,
            ngettext("%d invitation sent again.", "%d invitations sent again.", sent) % sent,
            messages.SUCCESS if sent else messages.WARNING,
        )

    @admin.action(description="Revoke selected invitations", permissions=["change"])
    def revoke_invitations(self, request, queryset):
        revoked = sum(invitation.revoke() for invitation in queryset)
        self.message_user(
            request,
            ngettext("%d invitation revoked.", "%d invitations revoked.", revoked) % revoked,
            messages.SUCCESS if revoked else messages.WARNING,
        )


# -- other apps' actions: each declares the permission it needs ------------------------------
# A staff account that may only view gets no action anywhere (tests/test_admin.py walks every
# registered admin). django-q2's "resubmit" runs a task's function again in the worker, and
# django-axes' clean-up deletes rows; neither declares a permission of its own.


def _needs(permission, action):
    @wraps(action)
    def declared(model_admin, request, queryset):
        return action(model_admin, request, queryset)

    declared.allowed_permissions = (permission,)
    return declared


for _model in (Success, Failure):
    _registered = admin.site._registry[_model]
    _registered.actions = [_needs("change", action) for action in _registered.actions]

_attempts = admin.site._registry[AccessAttempt]
_attempts.actions = [
    _needs("delete", getattr(type(_attempts), name)) if isinstance(name, str) else name
    for name in _attempts.actions
]


# -- django-q2's Scheduled tasks: superusers only ---------------------------------------------
# A schedule names any Python function, with arguments, for the worker to run: adding or
# changing one is running code. Superusers may; other staff with its permissions see them,
# read-only. (Imports here keep this one block.)

from django_q.admin import ScheduleAdmin  # noqa: E402
from django_q.models import Schedule  # noqa: E402

admin.site.unregister(Schedule)


@admin.register(Schedule)
class SuperusersScheduleAdmin(ScheduleAdmin):
    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
