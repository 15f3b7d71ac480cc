"""The REST API under /api/: generations (create, list, get, cancel, retry), galleries,
image originals. django-ninja gives the typed schemas, /api/openapi.json and /api/docs.

Each operation is the page's own steps behind a token instead of a session: the generate
form (`GenerationForm`, with the token) and its one reservation, the studio's filters
(`StudioFilterForm`) and its keyset pages, the access helpers of gallery/views/access.py
(404 for what the token's owner may not see), the state machine's `cancel` and
`spend.retry`. Errors are JSON: {"detail": "...", "errors": {field: [messages]}} for bad
input (400), 401 for a missing or revoked token, 403 for a read-only token on a call that
would spend or change, 404, 409 for a move the state machine refuses now, 429 with
Retry-After when a monthly limit is used up.
"""

from datetime import datetime
from typing import Literal

from django.contrib.auth.decorators import login_required
from django.urls import reverse
from ninja import Field, NinjaAPI, Query, Schema
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as SchemaError

from gallery import spend, tasks
from gallery.api.auth import READ_ONLY, UNAUTHENTICATED, token_auth
from gallery.forms import GenerationForm, StudioFilterForm
from gallery.models import (
    BACKGROUNDS,
    IMAGE_SIZES,
    MAX_IMAGES,
    OUTPUT_FORMATS,
    QUALITIES,
    Gallery,
    Generation,
)
from gallery.views.access import generation_for_user, generation_to_rerun, image_for_user
from gallery.views.media import send_original

PAGE_SIZE = 24
MOST_PER_PAGE = 100

api = NinjaAPI(
    title="Darkroom API",
    version="1",
    description=(
        "Generations, galleries and images of the token's owner, with the same access "
        "rules, quotas and budgets as the studio. Authenticate with "
        "`Authorization: Bearer <token>` (make one on your API tokens page)."
    ),
    auth=token_auth,
    urls_namespace="api",
    # The docs describe the API to the team: signed-in people read them.
    docs_decorator=login_required,
)


class ApiError(Exception):
    """An answer other than success, with what went wrong in words (and per field)."""

    def __init__(self, status, detail, *, errors=None, headers=None):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers


@api.exception_handler(ApiError)
def _api_error(request, error):
    body = {"detail": error.detail}
    if error.errors:
        body["errors"] = error.errors
    response = api.create_response(request, body, status=error.status)
    for name, value in (error.headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, error):
    response = api.create_response(request, {"detail": UNAUTHENTICATED}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="darkroom"'
    return response


@api.exception_handler(SchemaError)
def _malformed(request, error):
    # A body that isn't the schema's shape (not JSON, a number as text...): 400 with the
    # fields named, like the form's own errors.
    errors = {}
    for problem in error.errors:
        field = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "body"
        errors.setdefault(field, []).append(problem.get("msg", "invalid"))
    return _api_error(request, ApiError(400, "The request is malformed.", errors=errors))


def _may_spend(request):
    if not request.auth.may_generate:
        raise ApiError(403, READ_ONLY)


def _refusal(refused):
    """A reservation's refusal: 429 with Retry-After over a monthly limit, 403 while the
    account waits for approval (waiting won't help)."""
    if refused.limit is None:
        return ApiError(403, refused.message)
    headers = {"Retry-After": str(refused.retry_after)}
    return ApiError(429, refused.message, headers=headers)


# -- schemas ---------------------------------------------------------------------------------


def _choices(choices):
    return {"enum": [value for value, _ in choices]}


class GenerationIn(Schema):
    """The generate form's fields, with its defaults; the form validates them."""

    prompt: str = Field(..., max_length=32_000, examples=["A lighthouse at dusk, in watercolour"])
    image_size: str = Field("1024x1024", json_schema_extra=_choices(IMAGE_SIZES))
    background: str = Field("auto", json_schema_extra=_choices(BACKGROUNDS))
    quality: str = Field("high", json_schema_extra=_choices(QUALITIES))
    num_images: int = Field(1, ge=1, le=MAX_IMAGES)
    output_format: str = Field("png", json_schema_extra=_choices(OUTPUT_FORMATS))
    gallery: int | None = Field(
        None, description="A gallery you may add to; default: the token's, else your own."
    )


class ImageOut(Schema):
    id: int
    index: int
    width: int
    height: int
    content_type: str
    size_bytes: int
    download_url: str


class GenerationOut(Schema):
    id: int
    url: str = Field(description="The generation in the studio")
    api_url: str
    status: str = Field(json_schema_extra=_choices(Generation.Status.choices))
    finished: bool
    prompt: str
    image_size: str
    background: str
    quality: str
    num_images: int
    output_format: str
    gallery: int
    gallery_name: str
    made_by: str
    created_at: datetime
    queue_position: int | None
    estimated_wait_minutes: float | None
    error: str
    images: list[ImageOut]


class GenerationPage(Schema):
    items: list[GenerationOut]
    next: str | None = Field(description="The next (older) page, or null on the last one")


class GalleryOut(Schema):
    id: int
    name: str
    owner: str
    role: str
    may_generate: bool
    is_default: bool
    visibility: str
    studio_url: str


class Problem(Schema):
    detail: str
    errors: dict[str, list[str]] | None = None


ERRORS = {400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 429: Problem}


def _absolute(request, path):
    return request.build_absolute_uri(path)


def _generation_out(request, generation):
    images = [
        {
            "id": image.pk,
            "index": image.index,
            "width": image.width,
            "height": image.height,
            "content_type": image.content_type,
            "size_bytes": image.size_bytes,
            "download_url": _absolute(request, reverse("api:image_original", args=[image.pk])),
        }
        for image in generation.images.all()
    ]
    return {
        "id": generation.pk,
        "url": _absolute(request, generation.get_absolute_url()),
        "api_url": _absolute(request, reverse("api:generation", args=[generation.pk])),
        "status": generation.status,
        "finished": generation.is_finished,
        "prompt": generation.prompt,
        "image_size": generation.image_size,
        "background": generation.background,
        "quality": generation.quality,
        "num_images": generation.num_images,
        "output_format": generation.output_format,
        "gallery": generation.gallery_id,
        "gallery_name": generation.gallery.name,
        "made_by": generation.owner.get_username(),
        "created_at": generation.created_at,
        "queue_position": generation.queue_position,
        "estimated_wait_minutes": generation.estimated_wait_minutes,
        "error": generation.error,
        "images": images,
    }


def _current(request, pk):
    """The generation as the caller may see it now, with its images."""
    generation = generation_for_user(request.user, pk)
    return _generation_out(request, generation)


# -- generations -----------------------------------------------------------------------------


@api.post(
    "/generations",
    response={202: GenerationOut, **ERRORS},
    url_name="generations",
    summary="Create a generation",
)
def create_generation(request, body: GenerationIn):
    """The studio's Generate: validated by the same form, reserved against every limit
    (yours, the gallery's, the team's, the token's), then sent. Answers at once (202) with
    the generation; follow `api_url` for its progress and images."""
    _may_spend(request)
    data = body.model_dump(exclude_none=True)
    form = GenerationForm(data, owner=request.user, api_token=request.auth)
    if not (form.is_valid() and (generation := form.reserve())):
        if form.refused is not None:
            raise _refusal(form.refused)
        errors = {field: [e["message"] for e in found] for field, found in _errors(form)}
        raise ApiError(400, "The request was not accepted: nothing was sent.", errors=errors)
    tasks.enqueue_submit(generation)
    response = api.create_response(request, _current(request, generation.pk), status=202)
    response["Location"] = reverse("api:generation", args=[generation.pk])
    return response


def _errors(form):
    for field, found in form.errors.get_json_data().items():
        yield ("non_field_errors" if field == "__all__" else field), found


class GenerationFilters(Schema):
    """The studio's search and filters; without `gallery`, what you made yourself."""

    q: str | None = Field(None, description="Words in the prompt")
    status: Literal["active", "COMPLETED", "FAILED", "CANCELLED"] | None = None
    image_size: str | None = Field(None, json_schema_extra=_choices(IMAGE_SIZES))
    output_format: str | None = Field(None, json_schema_extra=_choices(OUTPUT_FORMATS))
    favourite: bool | None = None
    gallery: int | None = None
    before: int | None = Field(None, description="The cursor: the `next` link carries it")
    limit: int = Field(PAGE_SIZE, ge=1, le=MOST_PER_PAGE)


@api.get("/generations", response={200: GenerationPage, **ERRORS}, url_name="generations_list")
def list_generations(request, filters: Query[GenerationFilters]):
    """Newest first, a page at a time (`next` until the last page), filtered as the
    studio filters: a gallery you may not see is a 404."""
    form = StudioFilterForm(request.GET, user=request.user)
    form.is_valid()
    if form.refuses_gallery():
        raise ApiError(404, "No such gallery, or it is not shared with you.")
    visible = Generation.objects.visible_to(request.user).select_related("owner", "gallery")
    generations = form.apply(visible)
    if filters.before is not None:
        generations = generations.older_than(filters.before)
    found = list(generations.prefetch_related("images")[: filters.limit + 1])
    next_url = None
    if len(found) > filters.limit:
        found = found[: filters.limit]
        query = request.GET.copy()
        query["before"] = found[-1].pk
        next_url = _absolute(request, f"{reverse('api:generations_list')}?{query.urlencode()}")
    return {"items": [_generation_out(request, g) for g in found], "next": next_url}


@api.get("/generations/{pk}", response={200: GenerationOut, **ERRORS}, url_name="generation")
def get_generation(request, pk: int):
    """Its status, place in the provider's queue, estimated wait, failure reason and, once
    completed, its images with their download URLs."""
    return _current(request, pk)


@api.post(
    "/generations/{pk}/cancel",
    response={200: GenerationOut, **ERRORS},
    url_name="generation_cancel",
)
def cancel_generation(request, pk: int):
    """Stop waiting for it (yours, in a gallery you may still add to). The gateway has no
    cancel call: a job already running may still be billed."""
    _may_spend(request)
    generation = generation_to_rerun(request.user, pk)
    if not (generation.can_cancel and generation.cancel()):
        generation.refresh_from_db()
        if generation.status != Generation.Status.CANCELLED:
            raise ApiError(409, f"It can't be cancelled now: it is {generation.status}.")
    return _current(request, pk)


@api.post(
    "/generations/{pk}/retry",
    response={202: GenerationOut, **ERRORS},
    url_name="generation_retry",
)
def retry_generation(request, pk: int):
    """Send a failed or cancelled generation of yours again: a new request, reserved
    against every limit as a new one is (429 when it doesn't fit)."""
    _may_spend(request)
    generation = generation_to_rerun(request.user, pk)
    if not generation.can_retry:
        raise ApiError(
            409, f"Only a failed or cancelled generation is retried; it is {generation.status}."
        )
    try:
        if spend.retry(generation, request.auth):
            tasks.enqueue_submit(generation)
    except spend.Refused as refused:
        raise _refusal(refused) from None
    return api.create_response(request, _current(request, pk), status=202)


# -- galleries and images ------------------------------------------------------------------------


@api.get("/galleries", response={200: list[GalleryOut], **ERRORS}, url_name="galleries")
def list_galleries(request):
    """Every gallery you may see, with your role in it; `may_generate` where you may add."""
    galleries = Gallery.objects.visible_to(request.user).select_related("owner")
    return [
        {
            "id": gallery.pk,
            "name": gallery.name,
            "owner": gallery.owner.get_username(),
            "role": gallery.role.value,
            "may_generate": gallery.role.can_contribute,
            "is_default": gallery.is_default,
            "visibility": gallery.visibility,
            "studio_url": _absolute(request, f"{reverse('studio')}?gallery={gallery.pk}"),
        }
        for gallery in galleries
    ]


@api.get(
    "/images/{pk}/original",
    response={200: bytes, **ERRORS},
    url_name="image_original",
    openapi_extra={
        "responses": {
            200: {
                "description": "The image file as stored",
                "content": {
                    f"image/{kind}": {"schema": {"type": "string", "format": "binary"}}
                    for kind, _ in OUTPUT_FORMATS
                },
            }
        }
    },
)
def image_original(request, pk: int):
    """An image's original file, as the provider made it."""
    return send_original(request, image_for_user(request.user, pk))
