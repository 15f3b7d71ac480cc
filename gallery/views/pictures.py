"""How a page shows a picture: `src`, `srcset` and size for an `<img>`, from an image's
renditions, so the browser fetches the smallest file that is sharp at the size it draws.

Candidates are the thumbnail and the display rendition (models/renditions.py). The
original is never one, but for an image that has no display rendition yet, where the
viewer may have the original anyway: then it stands in for the large candidate.
"""

from dataclasses import dataclass

from gallery.imaging import thumbnail_size
from gallery.models import display_of


@dataclass(frozen=True)
class Picture:
    src: str
    srcset: str
    width: int  # the image's own size: the box the browser reserves before it loads
    height: int


def picture_of(image, url_for, *, original_allowed):
    """`url_for(kind)` gives the URL of the image's "thumbnail", "display" or "original"."""
    thumbnail_width, _ = thumbnail_size(image.width, image.height)
    candidates = {thumbnail_width: url_for("thumbnail")}
    display = display_of(image)
    if display is not None:
        candidates[display.width] = url_for("display")
    elif original_allowed:
        candidates[image.width] = url_for("original")
    # The largest is the fallback of browsers without srcset, and the sharpest.
    widths = sorted(candidates)
    return Picture(
        src=candidates[widths[-1]],
        srcset=", ".join(f"{candidates[w]} {w}w" for w in widths),
        width=image.width,
        height=image.height,
    )
