from django.urls import path

from gallery.api import openai, rest
from gallery.views import bulk, compare, galleries, media, ops, share, studio, trash, usage

urlpatterns = [
    # The studio: generate, watch, browse (issue: studio).
    path("", studio.studio, name="studio"),
    path("generate/", studio.generate, name="generate"),
    path("generate/price/", studio.generate_price, name="generate_price"),
    path("updates/", studio.studio_updates, name="studio_updates"),
    path("generations/<int:pk>/", studio.generation_detail, name="generation_detail"),
    path("generations/<int:pk>/retry/", studio.generation_retry, name="generation_retry"),
    path("generations/<int:pk>/cancel/", studio.generation_cancel, name="generation_cancel"),
    path(
        "generations/<int:pk>/favourite/",
        studio.generation_favourite,
        name="generation_favourite",
    ),
    path("generations/<int:pk>/delete/", studio.generation_delete, name="generation_delete"),
    path("images/<int:pk>/", studio.image_detail, name="image_detail"),
    # The select bar: one request for every selected card (issue 20).
    path("generations/bulk/", bulk.generation_bulk, name="generation_bulk"),
    path("compare/", compare.compare, name="compare"),
    # The trash: restore, delete forever, empty; deleted generations wait here (issue 20).
    path("trash/", trash.trash, name="trash"),
    path("trash/restore/", trash.trash_restore, name="trash_restore"),
    path("trash/delete/", trash.trash_delete, name="trash_delete"),
    path("trash/empty/", trash.trash_empty, name="trash_empty"),
    # What was spent: months per person and gallery, the ledger as CSV (issue: spend).
    path("usage/", usage.usage, name="usage"),
    path("usage/entries.csv", usage.usage_csv, name="usage_csv"),
    # The API for scripts and tools, by personal token (issue 21): REST, with its docs at
    # /api/docs, and the OpenAI-compatible images endpoint with its signed image links.
    path("api/", rest.api.urls),
    path("v1/images/generations", openai.images_generations, name="openai_images_generations"),
    path("v1/images/files/<str:token>", openai.image_file, name="openai_image_file"),
    # Load balancers and uptime checks: no sign-in, nothing sensitive (issue: operations).
    path("healthz", ops.healthz, name="healthz"),
    path("metrics", ops.metrics, name="metrics"),  # Prometheus, with METRICS_TOKEN only
    # Galleries, share links and moving generations between galleries (issue: galleries).
    path("galleries/", galleries.gallery_list, name="gallery_list"),
    path("galleries/new/", galleries.gallery_create, name="gallery_create"),
    path("galleries/<int:pk>/rename/", galleries.gallery_rename, name="gallery_rename"),
    path("galleries/<int:pk>/delete/", galleries.gallery_delete, name="gallery_delete"),
    path("galleries/<int:pk>/budget/", galleries.gallery_budget, name="gallery_budget"),
    path("galleries/<int:pk>/download.zip", media.gallery_zip, name="gallery_zip"),
    path("galleries/<int:pk>/links/new/", galleries.sharelink_create, name="sharelink_create"),
    path("links/<int:pk>/edit/", galleries.sharelink_edit, name="sharelink_edit"),
    path("links/<int:pk>/revoke/", galleries.sharelink_revoke, name="sharelink_revoke"),
    # The owner's look at a link as its visitors see it (no token: the owner's own media).
    path("links/<int:pk>/preview/", galleries.sharelink_preview, name="sharelink_preview"),
    path(
        "links/<int:pk>/preview/images/<int:image_pk>/",
        galleries.sharelink_preview_image,
        name="sharelink_preview_image",
    ),
    path("generations/<int:pk>/move/", galleries.generation_move, name="generation_move"),
    # Team galleries: members and roles, visibility, the Team page (issue: team galleries).
    path("team/", galleries.team, name="team"),
    path("galleries/<int:pk>/members/", galleries.member_add, name="member_add"),
    path("galleries/<int:pk>/visibility/", galleries.gallery_visibility, name="gallery_visibility"),
    path("galleries/<int:pk>/leave/", galleries.gallery_leave, name="gallery_leave"),
    path("members/<int:pk>/role/", galleries.member_role, name="member_role"),
    path("members/<int:pk>/remove/", galleries.member_remove, name="member_remove"),
    # Private media: served by views after an access check, never from MEDIA_URL.
    path("media/images/<int:pk>/original/", media.image_original, name="image_original"),
    path("media/images/<int:pk>/thumbnail/", media.image_thumbnail, name="image_thumbnail"),
    path("media/images/<int:pk>/display/", media.image_display, name="image_display"),
    path("media/images/<int:pk>/download/", media.image_download, name="image_download"),
    path("media/trash/<int:pk>/thumbnail/", media.trash_thumbnail, name="trash_thumbnail"),
    # Public, read-only pages behind a live share link; no account needed (a POST to a page
    # is its password form's).
    path("s/<str:token>/", share.share_gallery, name="share_gallery"),
    path("s/<str:token>/download.zip", media.share_zip, name="share_zip"),
    path("s/<str:token>/images/<int:pk>/", share.share_image, name="share_image"),
    path(
        "s/<str:token>/images/<int:pk>/original/",
        media.share_image_original,
        name="share_image_original",
    ),
    path(
        "s/<str:token>/images/<int:pk>/thumbnail/",
        media.share_image_thumbnail,
        name="share_image_thumbnail",
    ),
    path(
        "s/<str:token>/images/<int:pk>/display/",
        media.share_image_display,
        name="share_image_display",
    ),
    path(
        "s/<str:token>/images/<int:pk>/download/",
        media.share_image_download,
        name="share_image_download",
    ),
]
