"""Darkroom's domain, by area; every name is importable from `gallery.models`.

- galleries: `Gallery` and who may see and fill it
- generations: `Generation` (the state machine) and its `Image` rows
- sharing: `ShareLink`
- accounts: what belongs to a person (`Quota`)
- ops: `Lease` (pollers, heartbeats), `MetricCounter` (/metrics)
"""

from gallery.models.accounts import Quota, is_team_member
from gallery.models.galleries import Gallery, GalleryQuerySet
from gallery.models.generations import (
    BACKGROUNDS,
    IMAGE_SIZES,
    MAX_IMAGES,
    OUTPUT_FORMATS,
    PROMPT_MAX_LENGTH,
    QUALITIES,
    Generation,
    GenerationQuerySet,
    IllegalTransition,
    Image,
)
from gallery.models.ops import Lease, MetricCounter
from gallery.models.sharing import ShareLink, ShareLinkQuerySet, new_share_token

__all__ = [
    "BACKGROUNDS",
    "IMAGE_SIZES",
    "MAX_IMAGES",
    "OUTPUT_FORMATS",
    "PROMPT_MAX_LENGTH",
    "QUALITIES",
    "Gallery",
    "GalleryQuerySet",
    "Generation",
    "GenerationQuerySet",
    "IllegalTransition",
    "Image",
    "Lease",
    "MetricCounter",
    "Quota",
    "ShareLink",
    "ShareLinkQuerySet",
    "is_team_member",
    "new_share_token",
]
