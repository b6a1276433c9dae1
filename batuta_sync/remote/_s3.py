"""``s3://bucket/prefix``: S3 and S3-compatible servers, through obstore (``pip install 'batuta_sync[s3]'``).

Configuration is the standard AWS one: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``, ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``), ``AWS_ENDPOINT_URL`` for
S3-compatible servers (a plain ``http://`` endpoint is allowed for local servers), and
``AWS_PROFILE`` (read through boto3 when it is installed).  Credentials are never part of
a message: errors name ``s3://bucket/prefix`` and the key only.

Create-only writes are ``If-None-Match: *`` (obstore ``mode="create"``); compare-and-swap
is ``If-Match: <etag>`` (``mode={"e_tag": …}``).  obstore's delete takes no precondition,
so :meth:`S3Store.delete_if_match` re-reads the ETag first and the lease lock releases by
overwriting its record with ``put_if_match`` (``scale.md`` §2: equally safe).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from batuta_sync.remote.store import ObjectInfo, PreconditionFailed, RemoteError, local_write_error


def _missing_extra() -> RemoteError:
    return RemoteError(
        "An s3:// remote needs the obstore library, which is not installed.",
        hint="Install the extra: pip install 'batuta_sync[s3]' (or pip install obstore).",
    )


class S3Store:
    def __init__(self, bucket: str, prefix: str = "") -> None:
        try:
            from obstore.store import S3Store as _ObsS3
        except ImportError:
            raise _missing_extra()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        from datetime import timedelta

        kwargs: dict[str, Any] = {
            "region": region,
            "client_options": {"timeout": "120s", "connect_timeout": "10s"},
            # bounded: a refused connection fails in seconds, a 5xx/429 burst is retried a few times
            "retry_config": {"max_retries": 4, "retry_timeout": timedelta(seconds=30),
                             "backoff": {"init_backoff": timedelta(milliseconds=200),
                                         "max_backoff": timedelta(seconds=5), "base": 2}},
        }
        if endpoint:
            kwargs["endpoint"] = endpoint
            if endpoint.startswith("http://"):
                kwargs["client_options"]["allow_http"] = True
            kwargs["virtual_hosted_style_request"] = False
        if os.environ.get("AWS_PROFILE") and not os.environ.get("AWS_ACCESS_KEY_ID"):
            try:
                from obstore.auth.boto3 import Boto3CredentialProvider

                kwargs["credential_provider"] = Boto3CredentialProvider()
            except ImportError:
                raise RemoteError(
                    f"AWS_PROFILE is set but reading profiles needs boto3 (for {self.url}).",
                    hint="pip install boto3, or set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.",
                )
        try:
            self._store = _ObsS3(bucket, **kwargs)
        except Exception as exc:  # obstore raises its own config errors
            raise RemoteError(f"Cannot configure the remote {self.url}: {type(exc).__name__}.")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _k(self, key: str) -> str:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise RemoteError(f"Refusing the remote key {key!r} on {self.url}.")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, exc: BaseException, key: str) -> RemoteError:
        from obstore import exceptions as ox

        kind = "was refused (credentials?)" if isinstance(
            exc, ox.PermissionDeniedError | ox.UnauthenticatedError
        ) else "failed"
        # the first line of obstore's message names the operation and the HTTP status, never credentials
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return RemoteError(f"The remote {self.url} {kind} on {key!r}: {first}")

    def put_if_absent(self, key: str, data: bytes | Path) -> bool:
        import obstore
        from obstore import exceptions as ox

        body: Any = data if isinstance(data, bytes) else Path(data)
        try:
            obstore.put(self._store, self._k(key), body, mode="create")
            return True
        except (ox.AlreadyExistsError, ox.PreconditionError):
            return False
        except RemoteError:
            raise
        except Exception as exc:
            raise self._fail(exc, key)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        import obstore
        from obstore import exceptions as ox

        try:
            res = obstore.put(self._store, self._k(key), data, mode={"e_tag": etag})
        except (ox.PreconditionError, ox.AlreadyExistsError, FileNotFoundError):
            raise PreconditionFailed(f"{key!r} on {self.url} changed since it was read.")
        except RemoteError:
            raise
        except Exception as exc:
            raise self._fail(exc, key)
        return str(res.get("e_tag") or "")

    def get(self, key: str) -> tuple[bytes, str] | None:
        import obstore

        try:
            res = obstore.get(self._store, self._k(key))
            return bytes(res.bytes()), str(res.meta.get("e_tag") or "")
        except FileNotFoundError:
            return None
        except RemoteError:
            raise
        except Exception as exc:
            raise self._fail(exc, key)

    def get_to_file(
        self, key: str, dest: Path, *, max_size: int | None = None, on_chunk: Callable[[bytes], None] | None = None
    ) -> int | None:
        import obstore

        try:
            res = obstore.get(self._store, self._k(key))
            size = int(res.meta.get("size") or 0)
            if max_size is not None and size > max_size:
                raise RemoteError(f"{key!r} on {self.url} is {size} bytes, more than the expected {max_size}.")
            written = 0
            with open(dest, "wb") as f:
                for chunk in res.stream(min_chunk_size=8 << 20):
                    written += len(chunk)
                    if max_size is not None and written > max_size:
                        raise RemoteError(f"{key!r} on {self.url} is larger than the expected {max_size} bytes.")
                    f.write(chunk)
                    if on_chunk is not None:
                        on_chunk(bytes(chunk))
            return written
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno is None:  # obstore's own I/O errors carry no errno
                raise self._fail(exc, key)
            raise local_write_error(exc, key, self.url)
        except RemoteError:
            raise
        except Exception as exc:
            raise self._fail(exc, key)

    def head(self, key: str) -> ObjectInfo | None:
        import obstore

        try:
            meta = obstore.head(self._store, self._k(key))
        except FileNotFoundError:
            return None
        except RemoteError:
            raise
        except Exception as exc:
            raise self._fail(exc, key)
        return ObjectInfo(key, int(meta["size"]), str(meta.get("e_tag") or ""))

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def delete_if_match(self, key: str, etag: str) -> None:
        info = self.head(key)
        if info is None:
            return
        if info.etag != etag:
            raise PreconditionFailed(f"{key!r} on {self.url} changed since it was read.")
        self.delete(key)

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, self._k(key))
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._fail(exc, key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        import obstore

        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            for batch in obstore.list(self._store, prefix=full or None):
                for meta in batch:
                    yield ObjectInfo(str(meta["path"])[strip:], int(meta["size"]), str(meta.get("e_tag") or ""))
        except Exception as exc:
            raise self._fail(exc, prefix or "/")
