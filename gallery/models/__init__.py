"""Darkroom's domain, by area; every name is importable from `gallery.models`.

- galleries: `Gallery` and who may see and fill it
- generations: `Generation` (the state machine) and its `Image` rows
- sharing: `ShareLink`
- accounts: what belongs to a person (`Quota`, `AccountApproval`, `OidcIdentity`) and the
  `Invitation`s that bring people in
- ops: `Lease` (pollers, heartbeats)
"""

from gallery.models.accounts import (
    AccountApproval,
    Invitation,
    OidcIdentity,
    Quota,
    approval_refusal,
    is_awaiting_approval,
    is_team_member,
    team_members_q,
)
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
from gallery.models.ops import Lease
from gallery.models.sharing import ShareLink, ShareLinkQuerySet, new_share_token

__all__ = [
    "AccountApproval",
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
    "Invitation",
    "Lease",
    "OidcIdentity",
    "Quota",
    "ShareLink",
    "ShareLinkQuerySet",
    "approval_refusal",
    "is_awaiting_approval",
    "is_team_member",
    "new_share_token",
    "team_members_q",
]
