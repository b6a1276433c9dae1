"""Every error batuta raises on purpose, and the exit code each one maps to.

The tree (each class has a stable kebab-case ``code``, a ``message`` saying what
happened, and a ``hint`` saying what to do next)::

    BatutaError                         exit 1   error
    ├── UsageError                      exit 64  usage          bad flags / arguments
    ├── ConfigError                     exit 3   config         settings, hf.yaml, hf.lock, plan.json unreadable/invalid
    │   └── ManifestError               exit 3   manifest-invalid  (carries a list of Diagnostic)
    ├── PlanError                       exit 1
    │   ├── StalePlanError              exit 4   stale-plan     the world moved since `batuta plan`
    │   ├── LockOutOfDateError          exit 5   lock-out-of-date  `--locked` and the lock would change
    │   └── WorkspaceBusyError          exit 17  workspace-busy another apply holds the workspace lock
    ├── PartialApplyError               exit 6   partial-apply  some actions failed (`--keep-going`)
    ├── HubError                        exit 9   hub-error      the Hub answered something unusable
    │   ├── AuthError                   exit 7   unauthorized / gated-repo / forbidden
    │   ├── NotFoundError               exit 8   repo-not-found / revision-not-found / entry-not-found
    │   ├── NetworkError                exit 9   network        connection failed after retries, 5xx
    │   ├── RateLimitedError            exit 10  rate-limited   gave up waiting (`--no-wait`/`--max-wait`)
    │   ├── OfflineError                exit 18  offline-miss   offline and not in the cache
    │   └── ConflictError               exit 19  conflict       branch moved (412), repo exists, …
    ├── IntegrityError                  exit 11  integrity      hash/size mismatch, corrupt file
    ├── UnsafeFileError                 exit 12  unsafe-file    pickle & friends blocked by SafetyPolicy
    ├── SecretsFoundError               exit 13  secrets-found  the pre-push scan found credentials
    ├── ValidationError                 exit 14  invalid-file   a model file failed validation before push
    ├── ConversionError                 exit 15  conversion     unsupported or malformed input for a converter
    └── DiskFullError                   exit 16  disk-full      not enough free space

Exit codes 0 (success) and 2 (``plan --detailed-exitcode``: changes pending) are
not errors; 130 means interrupted (Ctrl-C).  ``EXIT_CODES`` below is the single
table; ``docs/exit-codes.md`` is checked against it by a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

# The one exit-code table.  name -> (code, meaning)
EXIT_CODES: dict[str, tuple[int, str]] = {
    "ok": (0, "Success (for `plan --detailed-exitcode`: no changes)."),
    "error": (1, "Unexpected or generic error."),
    "changes": (2, "`plan --detailed-exitcode`: the plan has changes."),
    "config": (3, "Settings, hf.yaml, hf.lock or plan.json is invalid or unreadable, a folder a setting names (HF_HUB_CACHE, --root, an output) is unusable, or an optional extra it needs is missing (`missing-extra`, e.g. `batuta_sync[dask]`)."),
    "stale-plan": (4, "`apply` refused a saved plan because the manifest, lock or Hub moved."),
    "lock-out-of-date": (5, "`--locked`: the lockfile would have to change."),
    "partial": (6, "`apply` completed some actions; others failed or were skipped."),
    "auth": (7, "Not authenticated, token rejected, or gated/forbidden repo."),
    "not-found": (8, "Repository, revision or file does not exist (or is private)."),
    "network": (9, "Network failure or Hub server error after retries."),
    "rate-limited": (10, "Rate limited and not allowed to wait (`--no-wait` / `--max-wait`)."),
    "integrity": (11, "Downloaded or local data failed hash/size verification."),
    "unsafe-file": (12, "Safety policy blocked pickle-based files (use `--allow-unsafe`)."),
    "secrets-found": (13, "Secret scan found credentials in files to be pushed."),
    "invalid-file": (14, "A file failed format validation before push."),
    "conversion": (15, "Format conversion failed or is not supported."),
    "disk-full": (16, "Not enough free disk space."),
    "workspace-busy": (17, "Another `batuta apply` holds the workspace lock."),
    "offline-miss": (18, "Offline mode and the data is not in the cache."),
    "conflict": (19, "Conflict on the Hub (branch moved, repo exists with other type, …)."),
    "path-escape": (20, "A path would leave the cache, workspace or output it belongs to (hostile input or a symlink)."),
    "name-collision": (21, "Two file names clash (same after Unicode normalization/case folding, or a file where a folder must be)."),
    "untrusted-endpoint": (22, "The token would go to an endpoint the user has not trusted (e.g. one set only in hf.yaml)."),
    "remote": (23, "The shared remote (s3:// or file://) failed or refused an operation."),
    "usage": (64, "Command-line usage error."),
    "interrupted": (130, "Interrupted (Ctrl-C)."),
}


def exit_code(name: str) -> int:
    """Numeric exit code for a name of ``EXIT_CODES``."""
    return EXIT_CODES[name][0]


class Diagnostic(NamedTuple):
    """One problem in an input file, located Terraform-style (``file:line:col``).

    A NamedTuple rather than a dataclass: ``dataclasses`` drags ``inspect`` into start-up.
    """

    message: str
    file: str = ""
    line: int = 0
    col: int = 0
    key: str = ""

    def __str__(self) -> str:
        loc = self.file
        if self.line:
            loc += f":{self.line}:{self.col or 1}"
        where = f"{loc}: " if loc else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class BatutaError(Exception):
    """Base of every expected error.  Renders as one paragraph, never a traceback."""

    code: str = "error"
    exit_name: str = "error"
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        from batuta_sync._redact import redact

        self.message = redact(message)
        self.hint = redact(hint if hint is not None else self.default_hint)
        if code is not None:
            self.code = code
        super().__init__(self.message)

    @property
    def exit_code(self) -> int:
        return exit_code(self.exit_name)

    def render(self) -> str:
        """The one-paragraph text the CLI prints."""
        text = f"Error [{self.code}]: {self.message}"
        if self.hint:
            text += f"\nHint: {self.hint}"
        return text


class UsageError(BatutaError):
    code = "usage"
    exit_name = "usage"
    default_hint = "Run the command with --help to see its options."


class ConfigError(BatutaError):
    code = "config"
    exit_name = "config"


class ManifestError(ConfigError):
    """hf.yaml / hf.lock / plan.json problems, all reported at once."""

    code = "manifest-invalid"
    default_hint = "Fix the listed problems; `batuta validate` re-checks the file."

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = (), *, hint: str | None = None) -> None:
        self.diagnostics = tuple(diagnostics)
        full = message
        if self.diagnostics:
            full += "\n" + "\n".join(f"  - {d}" for d in self.diagnostics)
        super().__init__(full, hint=hint)


class PlanError(BatutaError):
    code = "plan-error"


class StalePlanError(PlanError):
    code = "stale-plan"
    exit_name = "stale-plan"
    default_hint = "Run `batuta plan -o plan.json` again and apply the new plan."


class LockOutOfDateError(PlanError):
    code = "lock-out-of-date"
    exit_name = "lock-out-of-date"
    default_hint = "Run `batuta lock` (or `batuta lock --update ADDR`) and commit hf.lock."


class WorkspaceBusyError(PlanError):
    code = "workspace-busy"
    exit_name = "workspace-busy"
    default_hint = "Wait for the other apply to finish; if it died, its lock is released automatically."


class PartialApplyError(BatutaError):
    code = "partial-apply"
    exit_name = "partial"
    default_hint = "Fix the failed actions and run `batuta plan` / `batuta apply` again; completed work is kept."


class HubError(BatutaError):
    code = "hub-error"
    exit_name = "network"


class AuthError(HubError):
    code = "unauthorized"
    exit_name = "auth"
    default_hint = "Log in with `batuta hf login` or set HF_TOKEN to a token with access to this repo."


class NotFoundError(HubError):
    code = "repo-not-found"
    exit_name = "not-found"
    default_hint = "Check the repo id and type (model/dataset/space); private repos need a token."


class NetworkError(HubError):
    code = "network"
    exit_name = "network"
    default_hint = "Check HF_ENDPOINT and your connection, then retry; completed downloads are kept."


class RateLimitedError(HubError):
    code = "rate-limited"
    exit_name = "rate-limited"


class OfflineError(HubError):
    code = "offline-miss"
    exit_name = "offline-miss"
    default_hint = "Run the same command once online (without --offline / HF_HUB_OFFLINE) to fill the cache."


class ConflictError(HubError):
    code = "conflict"
    exit_name = "conflict"


class IntegrityError(BatutaError):
    code = "integrity"
    exit_name = "integrity"
    default_hint = "The corrupt data was discarded; retry the command."


class UnsafeFileError(BatutaError):
    code = "unsafe-file"
    exit_name = "unsafe-file"
    default_hint = "Pickle files can run code when loaded. Pass --allow-unsafe only if you trust the source."


class SecretsFoundError(BatutaError):
    code = "secrets-found"
    exit_name = "secrets-found"
    default_hint = "Remove the secrets (and rotate them), or suppress a false positive by its fingerprint."


class ValidationError(BatutaError):
    code = "invalid-file"
    exit_name = "invalid-file"


class ConversionError(BatutaError):
    code = "conversion"
    exit_name = "conversion"


class DiskFullError(BatutaError):
    code = "disk-full"
    exit_name = "disk-full"
    default_hint = "Free disk space (e.g. `batuta cache prune --max-size 50GB`) or point HF_HUB_CACHE elsewhere."
