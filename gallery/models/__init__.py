"""Darkroom's domain, by area; every name is importable from `gallery.models`.

- galleries: `Gallery`, `GalleryMember` and `Role`: who may see and fill a gallery
- generations: `Generation` (the state machine), its `Image` rows, `Favourite`
- renditions: `DisplayRendition`, the WebP a page shows instead of an original
- sharing: `ShareLink`
- tokens: `ApiToken`, a person's key for scripts and tools (gallery/api/)
- spending: the usage ledger (`UsageEntry`), its month totals (`UsageTotal`), `TeamBudget`
- accounts: what belongs to a person (`Quota`, `AccountApproval`, `OidcIdentity`) and the
  `Invitation`s that bring people in
- ops: `Lease` (pollers, heartbeats), `MetricCounter` (/metrics), `Throttle` (throttles.py),
  `Sighting` (what requests showed, for `check --deploy`)
"""

from gallery.models.accounts import (
    AccountApproval,
    Invitation,
    OidcIdentity,
    Quota,
    approval_refusal,
    awaiting_approval_q,
    is_awaiting_approval,
    is_team_member,
    team_members_q,
)
from gallery.models.galleries import (
    Gallery,
    GalleryMember,
    GalleryQuerySet,
    Role,
    gallery_visible_to,
    role_in_gallery,
)
from gallery.models.generations import (
    BACKGROUNDS,
    IMAGE_SIZES,
    MAX_IMAGES,
    OUTPUT_FORMATS,
    PROMPT_MAX_LENGTH,
    QUALITIES,
    Favourite,
    Generation,
    GenerationQuerySet,
    IllegalTransition,
    Image,
    ImageQuerySet,
)
from gallery.models.ops import Lease, MetricCounter, Sighting, Throttle
from gallery.models.renditions import DisplayRendition, display_of
from gallery.models.sharing import ShareLink, ShareLinkQuerySet, new_share_token
from gallery.models.spending import (
    TeamBudget,
    UsageEntry,
    UsageTotal,
    month_of,
    price_per_image,
)
from gallery.models.tokens import ApiToken, ApiTokenQuerySet

__all__ = [
    "AccountApproval",
    "ApiToken",
    "ApiTokenQuerySet",
    "BACKGROUNDS",
    "DisplayRendition",
    "IMAGE_SIZES",
    "MAX_IMAGES",
    "OUTPUT_FORMATS",
    "PROMPT_MAX_LENGTH",
    "QUALITIES",
    "Favourite",
    "Gallery",
    "GalleryMember",
    "GalleryQuerySet",
    "Generation",
    "GenerationQuerySet",
    "IllegalTransition",
    "Image",
    "ImageQuerySet",
    "Invitation",
    "Lease",
    "MetricCounter",
    "OidcIdentity",
    "Quota",
    "Role",
    "ShareLink",
    "ShareLinkQuerySet",
    "Sighting",
    "TeamBudget",
    "Throttle",
    "UsageEntry",
    "UsageTotal",
    "approval_refusal",
    "awaiting_approval_q",
    "display_of",
    "gallery_visible_to",
    "is_awaiting_approval",
    "is_team_member",
    "month_of",
    "new_share_token",
    "price_per_image",
    "role_in_gallery",
    "team_members_q",
]
