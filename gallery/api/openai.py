"""POST /v1/images/generations in OpenAI's shape, so the official `openai` package (and Open
WebUI, LibreChat, n8n...) can use Darkroom with `base_url="<site>/v1"` and a Darkroom token
as `api_key`.

The request becomes a normal generation (the generate form with the token, its one
reservation, the pipeline): it shows in the studio like any other. The request is then held
until the generation finishes, waiting on our database (gallery.changes), never on the
gateway: the waiting thread holds no CPU, no query and no database connection. At most
WAITING_REQUESTS_PER_PROCESS requests wait in a web process (config/gunicorn.py), shared
with the studio's live updates, so the other threads always serve the site; asked when
none is free, it answers 429 before anything is made.

Answers: {"created", "data": [{"b64_json"}...]} (or [{"url"}] with response_format="url":
a signed link to the stored original that expires and needs no token), and errors as
{"error": {"message", "type", "param", "code"}} with the status codes the `openai` package
maps to its exceptions. Whenever a retry would make (and bill) the images again, or can't
help, the answer says `x-should-retry: false`: the package otherwise retries 429 and 5xx
answers by itself.
"""

import base64
import json

from django.conf import settings
from django.core import signing
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from gallery import changes, tasks
from gallery.api.auth import READ_ONLY, UNAUTHENTICATED, token_auth
from gallery.forms import GenerationForm
from gallery.models import ApiToken, Generation, Image
from gallery.views.media import send_original

MODEL = "gpt-image-1.5"
SIZES = {"auto": "1024x1024"}  # the three sizes themselves pass as they are
QUALITIES = {"auto": "high"}
RESPONSE_FORMATS = ("b64_json", "url")
# OpenAI's parameter for each of the form's fields, to name it in an error.
PARAMS = {"image_size": "size", "num_images": "n"}
URL_SALT = "gallery.api.openai.image-url"


def openai_error(
    status,
    message,
    *,
    kind="invalid_request_error",
    param=None,
    code=None,
    retry=None,
    retry_after=None,
):
    """An error as OpenAI answers it. `retry` False tells the `openai` package not to
    retry by itself (x-should-retry), `retry_after` when it may."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    response = JsonResponse(body, status=status)
    if retry is not None:
        response["x-should-retry"] = "true" if retry else "false"
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _request_params(body):
    """The generate form's data from an OpenAI request body, or an error answer.
    Unknown fields are ignored, as OpenAI ignores them."""
    if not isinstance(body, dict):
        return None, openai_error(400, "The body must be a JSON object.")
    model = body.get("model") or MODEL
    if model != MODEL:
        message = f"The model “{model}” isn't served here: use “{MODEL}” (or leave it out)."
        return None, openai_error(400, message, param="model", code="model_not_found")
    response_format = body.get("response_format") or "b64_json"
    if response_format not in RESPONSE_FORMATS:
        message = "response_format must be “b64_json” or “url”."
        return None, openai_error(400, message, param="response_format")
    size = body.get("size") or "auto"
    quality = body.get("quality") or "auto"
    data = {
        "prompt": body.get("prompt", ""),
        "image_size": SIZES.get(size, size),
        "quality": QUALITIES.get(quality, quality),
        "num_images": body.get("n") or 1,
        "background": body.get("background") or "auto",
        "output_format": body.get("output_format") or "png",
    }
    if body.get("gallery") is not None:  # Darkroom's own: extra_body={"gallery": id}
        data["gallery"] = body["gallery"]
    return (data, response_format), None


@csrf_exempt
@require_POST
def images_generations(request):
    token = token_auth(request)
    if token is None:
        return openai_error(401, UNAUTHENTICATED, code="invalid_api_key")
    if not token.may_generate:
        return openai_error(403, READ_ONLY, kind="permission_error", code="read_only_token")
    try:
        body = json.loads(request.body)
    except ValueError:
        return openai_error(400, "The body must be JSON.")
    params, problem = _request_params(body)
    if problem:
        return problem
    data, response_format = params
    try:
        # A place to wait first, so nothing is made that this request then can't wait for.
        with changes.waiting_room():
            form = GenerationForm(data, owner=token.user, api_token=token)
            if not (form.is_valid() and (generation := form.reserve())):
                return _not_accepted(form)
            tasks.enqueue_submit(generation)
            return _answer(request, generation, response_format)
    except changes.Busy:
        # Nothing made: the client may come back (the package retries after this).
        message = "Too many image requests are waiting on this server: try again shortly."
        return openai_error(429, message, kind="server_busy", code="busy", retry_after=2)


def _not_accepted(form):
    if form.refused is not None:
        refused = form.refused
        if refused.limit is None:  # the account waits for an operator's approval
            return openai_error(403, refused.message, kind="permission_error", retry=False)
        return openai_error(
            429,
            refused.message,
            kind="insufficient_quota",
            code="insufficient_quota",
            retry=False,  # the month's limit: retrying won't help before it resets
            retry_after=refused.retry_after,
        )
    field, errors = next(iter(form.errors.items()))
    param = None if field == "__all__" else PARAMS.get(field, field)
    message = " ".join(errors)
    return openai_error(400, f"{param}: {message}" if param else message, param=param)


def _answer(request, generation, response_format):
    studio = request.build_absolute_uri(generation.get_absolute_url())
    found = changes.wait_until_finished(
        [generation.pk], timeout=settings.OPENAI_COMPAT_TIMEOUT, in_room=True
    )
    generation = found[0] if found else None
    if generation is None:
        return openai_error(409, "The generation was deleted before it finished.", retry=False)
    S = Generation.Status
    if generation.status == S.COMPLETED:
        return JsonResponse(_images_body(request, generation, response_format))
    if generation.status == S.FAILED:
        message = f"The image provider could not make it: {generation.error}"
        return openai_error(
            502, message, kind="server_error", code="generation_failed", retry=False
        )
    if generation.status == S.CANCELLED:
        message = "The generation was cancelled (in the studio) before it finished."
        return openai_error(409, message, code="generation_cancelled", retry=False)
    if changes.stopping():
        message = (
            f"The server is restarting: the generation goes on, and its images will be in "
            f"the studio at {studio}"
        )
        return openai_error(503, message, kind="server_error", code="restarting", retry=False)
    seconds = round(settings.OPENAI_COMPAT_TIMEOUT)
    message = (
        f"Not finished after {seconds} s (it is {generation.get_status_display().lower()}): it "
        f"goes on, and its images will be in the studio at {studio}"
    )
    return openai_error(504, message, kind="server_error", code="timeout", retry=False)


def _images_body(request, generation, response_format):
    images = list(generation.images.order_by("index"))
    if response_format == "url":
        data = [
            {"url": request.build_absolute_uri(signed_url(image, generation))} for image in images
        ]
    else:
        data = [{"b64_json": _base64(image)} for image in images]
    return {
        "created": int(generation.created_at.timestamp()),
        "data": data,
        "background": generation.background,
        "output_format": generation.output_format,
        "quality": generation.quality,
        "size": generation.image_size,
    }


def _base64(image):
    with image.original.open("rb") as original:
        return base64.b64encode(original.read()).decode("ascii")


# -- response_format="url": a signed link to the original --------------------------------------


def signed_url(image, generation):
    """A link to `image`'s original that works for OPENAI_IMAGE_URL_SECONDS, while the
    token it was made through lives and its owner may still see the image."""
    value = signing.dumps(
        {"image": image.pk, "user": generation.owner_id, "token": generation.api_token_id},
        salt=URL_SALT,
    )
    return reverse("openai_image_file", args=[value])


@require_safe
def image_file(request, token):
    """The original behind a signed link (the `openai` package fetches it without a
    token). `token` is the signed value: the log redaction hides it like any token."""
    try:
        value = signing.loads(token, salt=URL_SALT, max_age=settings.OPENAI_IMAGE_URL_SECONDS)
    except signing.BadSignature:  # expired, or never ours
        raise Http404("This image link has expired or is not valid") from None
    api_token = ApiToken.objects.filter(pk=value["token"], user_id=value["user"]).first()
    if api_token is None or api_token.is_revoked or not api_token.user.is_active:
        raise Http404("This image link's token was revoked")
    image = get_object_or_404(
        Image.objects.visible_to(api_token.user).select_related("generation"), pk=value["image"]
    )
    return send_original(request, image)
