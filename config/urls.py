from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Darkroom administration"
admin.site.site_title = "Darkroom admin"
admin.site.index_title = "Studio operations"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("gallery.urls_accounts")),
    path("", include("gallery.urls")),
]
