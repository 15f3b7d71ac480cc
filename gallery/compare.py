"""Comparing two images: their parameters side by side, what differs marked, and their
prompts word by word (difflib, so "a red kite at dusk" and "a blue kite at dawn" mark
"red"/"blue" and "dusk"/"dawn" only). Pure functions of two images; the page is
gallery/views/compare.py."""

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from django.template.defaultfilters import filesizeformat
from django.utils import timezone

# Words and the spaces between them, so joining the pieces gives the prompt back exactly.
WORDS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Piece:
    text: str
    changed: bool


@dataclass(frozen=True)
class Row:
    label: str
    left: str
    right: str

    @property
    def differs(self):
        return self.left != self.right


def prompt_diff(left, right):
    """Each prompt as pieces, those not in the other marked `changed` (whitespace never is)."""
    a, b = WORDS.findall(left), WORDS.findall(right)
    left_pieces, right_pieces = [], []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        changed = tag != "equal"
        left_pieces += [Piece(word, changed and not word.isspace()) for word in a[i1:i2]]
        right_pieces += [Piece(word, changed and not word.isspace()) for word in b[j1:j2]]
    return left_pieces, right_pieces


def parameter_rows(left, right):
    """The rows of the comparison table for two images (with their generations)."""

    def of(image):
        generation = image.generation
        return {
            "Size": generation.get_image_size_display(),
            "Quality": generation.get_quality_display(),
            "Background": generation.get_background_display(),
            "Format": generation.get_output_format_display(),
            "Images in the generation": str(generation.num_images),
            "Gallery": generation.gallery.name,
            "Made by": generation.owner.get_username(),
            "Made": timezone.localtime(generation.created_at).strftime("%-d %b %Y, %H:%M"),
            "Pixels": f"{image.width} × {image.height}",
            "File size": str(filesizeformat(image.size_bytes)),
        }

    a, b = of(left), of(right)
    return [Row(label, a[label], b[label]) for label in a]
