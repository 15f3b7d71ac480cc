"""The API: another door into the same models, for scripts and tools.

- `auth`: the one authentication of API tokens (`Authorization: Bearer <token>`), and the
  refusal of spending calls to a read-only token.
- `rest`: the REST API under /api/ (django-ninja: typed schemas, /api/openapi.json and
  interactive docs at /api/docs).
- `openai`: POST /v1/images/generations in OpenAI's shape, for the `openai` package and the
  tools built on it; it waits on our database for the generation, never on the gateway.

Every call acts as the token's owner: the access helpers of gallery/views/access.py, the
generate form's validation, the one reservation of gallery/spend.py (with the token's own
cap among the limits) and the Generation state machine, as the pages use them.
"""
