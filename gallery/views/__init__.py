"""HTTP views, one module per area: accounts, studio, galleries and sharing, media, ops."""
