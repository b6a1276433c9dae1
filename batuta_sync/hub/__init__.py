"""batuta_sync.hub: the only package that talks to the Hugging Face Hub.

Modules (import them directly; this package imports nothing heavy):

* ``_http``      -- :class:`HubHttp`, the metadata client (httpx2): bounded bodies,
                    redirects per hop, pagination, error mapping, offline guard.
* ``retry``      -- the one retry/backoff/rate-limit loop of metadata calls, downloads and
                    pushes (``Retry.request`` / ``Retry.stream``; classify by type and status).
* ``client``     -- :class:`HubApi`: search, info, snapshot, auth (the spec's ``HfClient`` adds
                    downloads/uploads above the engines, in :mod:`batuta_sync.client`).
* ``models``     -- the spec's data model (frozen dataclasses translated once from Hub JSON),
                    queries, ``--size`` expressions.
* ``ratelimit``  -- pure backoff/hint schedule and the shared 429 gate.
* ``limits``     -- client limits: timeouts, size caps, pace, quick retries, ``--timeout``.
* ``proxy``      -- which proxy a URL goes through (HTTPS_PROXY / HTTP_PROXY / NO_PROXY).
* ``errors_map`` -- Hub error responses -> BatutaErrors with hints.
* ``metacache``  -- the metadata cache (``metadata_ttl``; answers offline).
* ``auth``       -- the one header builder and User-Agent, who gets the token, token storage at
                    ``$HF_HOME/token`` (mode 0600).
* ``download``, ``cache`` (pull engine: ``http.client`` for speed) and ``upload`` (publishing
  through huggingface_hub's ``HfApi``) build on these: three clients, one retry loop, one
  header builder, one proxy rule (docs/architecture.md "HTTP").

Docs: ``docs/query.md``, ``docs/auth.md``.
"""
