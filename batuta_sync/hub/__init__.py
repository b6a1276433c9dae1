"""batuta_sync.hub: the only package that talks to the Hugging Face Hub.

Modules (import them directly; this package imports nothing heavy):

* ``_http``      -- :class:`HubHttp`, the one transport: auth, user agent, retries,
                    rate-limit waits (shared pause), error mapping, offline guard.
* ``client``     -- :class:`HubApi`: search, info, snapshot, auth (the spec's ``HfClient`` adds
                    downloads/uploads above the engines, in :mod:`batuta_sync.client`).
* ``models``     -- the spec's data model (frozen dataclasses translated once from Hub JSON),
                    queries, ``--size`` expressions.
* ``ratelimit``  -- pure retry/backoff/hint policy and the shared gate.
* ``errors_map`` -- Hub error responses -> BatutaErrors with hints.
* ``metacache``  -- the metadata cache (``metadata_ttl``; answers offline).
* ``auth``       -- token storage at ``$HF_HOME/token`` (mode 0600).
* ``download``, ``cache`` (pull engine) and ``upload`` (publishing) build on these.

Docs: ``docs/query.md``, ``docs/auth.md``.
"""
