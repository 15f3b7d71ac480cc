from django.apps import AppConfig


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Darkroom"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from gallery import checks, signals  # noqa: F401
