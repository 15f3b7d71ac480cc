from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.http import require_safe

admin.site.site_header = "Darkroom administration"
admin.site.site_title = "Darkroom admin"
admin.site.index_title = "Studio operations"


@require_safe
@login_not_required
def favicon(request):
    # Browsers ask for /favicon.ico on pages that name no icon (admin's, files, errors).
    return redirect(static("img/favicon.svg"), permanent=True)


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("accounts/", include("gallery.urls_accounts")),
    path("", include("gallery.urls")),
]
