"""Personal API tokens on the account's API tokens page: make one (its secret is shown on
that answer only, never again), list them with when each was last used, revoke one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from gallery.api.openai import MODEL
from gallery.forms import ApiTokenForm


@require_http_methods(["GET", "POST"])
@login_required
def token_list(request):
    form = ApiTokenForm(request.POST or None, user=request.user)
    made = None
    if request.method == "POST" and form.is_valid():
        made = form.save()
        form = ApiTokenForm(user=request.user)  # ready for the next one
    context = {
        "form": form,
        "made": made,
        "tokens": request.user.api_tokens.select_related("gallery"),
        "api_root": request.build_absolute_uri(reverse("api:api-root")),
        "openai_base_url": request.build_absolute_uri("/v1"),
        "model": MODEL,
    }
    response = render(request, "gallery/api_tokens.html", context)
    # The page may hold a new token: no cache (the back button's included) may keep it.
    add_never_cache_headers(response)
    return response


@require_POST
@login_required
def token_revoke(request, pk):
    token = get_object_or_404(request.user.api_tokens, pk=pk)
    if token.revoke():
        messages.success(request, f"“{token.name}” is revoked: it no longer works.")
    return redirect("api_tokens")
