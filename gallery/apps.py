from django.apps import AppConfig


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Darkroom"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from gallery import checks, signals  # noqa: F401
        from gallery.identity import checks as identity_checks  # noqa: F401
        from gallery.identity import signals as identity_signals  # noqa: F401
