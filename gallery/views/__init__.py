"""HTTP views, one module per area: accounts, studio, galleries and sharing, media, ops;
`access` holds the one owner-scoped, 404-ing lookup per private object that they all use."""
