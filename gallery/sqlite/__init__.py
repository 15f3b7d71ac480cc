"""Darkroom's SQLite database backend (settings.DATABASES' ENGINE "gallery.sqlite"): Django's
own, with writers that queue instead of sleeping. See base.py."""
