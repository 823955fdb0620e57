"""Which storage options are credentials: the one rule set behind the log filter and the CLI's masking.

An option is a credential when its key looks like one (``secret``, ``key``,
``token``, ``password``, ``connection_string``...): every string under it, at
any depth, is a secret, except a few words such options often hold that are
not (``anon``, ``true``...).

>>> credential_values({"key": "AKIA1234", "token": "anon", "client_kwargs": {"endpoint_url": "http://x"}})
['AKIA1234']
>>> redact({"secret": "s3cr3t", "client_kwargs": {"endpoint_url": "http://x", "aws_session_token": "t"}})
{'secret': '***', 'client_kwargs': {'endpoint_url': 'http://x', 'aws_session_token': '***'}}
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

MASK = "***"

_CREDENTIAL_KEY = re.compile(
    r"secret|key|token|passw|credential|private|signature|sas|auth|session|cookie|connection_string", re.IGNORECASE
)
_CREDENTIAL_VARIABLE = re.compile(
    r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|ACCESS_KEY|ACCOUNT_KEY|API_KEY|SAS|CONNECTION_STRING", re.IGNORECASE
)
# Values that credential-looking keys often hold but that are not secrets (masking them would garble output).
NOT_SECRET = frozenset({"anon", "true", "false", "null", "none", "cloud", "cache", "browser", "google_default"})
MIN_LENGTH = 4
"""Shorter values are not masked: replacing them everywhere would garble text without hiding anything."""
_SIGNED_QUERY = re.compile(
    r"\b(X-Amz-Signature|X-Amz-Security-Token|X-Goog-Signature|Signature|sig)=[^&\s'\"<>]+", re.IGNORECASE
)
"""The query parameters that make a URL signed (S3 SigV4 and SigV2, GCS, an Azure SAS), and a session token."""
_LOGGED_SIGNATURE = re.compile(r"(\bSignature:\s*)[0-9a-f]{16,}", re.IGNORECASE)
"""botocore's DEBUG line with the signature it computed (for a request or a presigned URL)."""


def is_credential_key(name: object) -> bool:
    """True when an option named ``name`` holds a credential.

    >>> is_credential_key("aws_secret_access_key"), is_credential_key("endpoint_url")
    (True, False)
    """
    return bool(_CREDENTIAL_KEY.search(str(name)))


def is_credential_variable(name: str) -> bool:
    """True when an environment variable named ``name`` holds a credential (not a path to one).

    >>> is_credential_variable("AWS_SECRET_ACCESS_KEY"), is_credential_variable("GOOGLE_APPLICATION_CREDENTIALS")
    (True, False)
    """
    if name.endswith(("_FILE", "_PATH")) or name == "GOOGLE_APPLICATION_CREDENTIALS":
        return False
    return bool(_CREDENTIAL_VARIABLE.search(name))


def secret_leaves(value: Any, secret: bool = False) -> Iterator[str]:
    """String values found under a credential-looking key, at any depth (and each long line of a PEM key)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from secret_leaves(item, secret or is_credential_key(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from secret_leaves(item, secret)
    elif secret and value is not None and not isinstance(value, bool):
        text = str(value)
        yield text
        yield from (line.strip() for line in text.splitlines() if len(line.strip()) >= 16)


def credential_values(options: Mapping[str, Any], min_length: int = MIN_LENGTH) -> list[str]:
    """The secrets that ``options`` carry, to be masked wherever text is shown."""
    return [s for s in secret_leaves(options) if len(s) >= min_length and s.lower() not in NOT_SECRET]


def redact_signed_urls(text: str) -> str:
    """``text`` with the signature of every signed URL in it (and any logged signature) replaced by ``***``.

    >>> redact_signed_urls("https://b.s3.amazonaws.com/k?X-Amz-Expires=60&X-Amz-Signature=0a1b2c3d")
    'https://b.s3.amazonaws.com/k?X-Amz-Expires=60&X-Amz-Signature=***'
    >>> redact_signed_urls("https://a.blob.core.windows.net/c/k?se=2026-12-01&sp=r&sig=Qm9v%2Bw%3D")
    'https://a.blob.core.windows.net/c/k?se=2026-12-01&sp=r&sig=***'
    """
    text = _SIGNED_QUERY.sub(lambda m: f"{m.group(1)}={MASK}", text)
    return _LOGGED_SIGNATURE.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` fit to print: values under credential-looking keys become ``***``."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if is_credential_key(key):
            out[key] = MASK
        elif isinstance(value, Mapping):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


class Redactor(logging.Filter):
    """Replaces the registered credentials, and the signatures of signed URLs, with ``***`` in the records of the
    loggers it is installed on.

    Backend client libraries print request headers at DEBUG (botocore shows the
    access key id in ``Authorization``, and the signature of a presigned URL it
    computes); each backend names those loggers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._loggers: set[str] = set()

    def register(self, options: Mapping[str, Any], loggers: Iterable[str]) -> None:
        found = set(credential_values(options))
        loggers = set(loggers)
        if not found - self.secrets and loggers <= self._loggers:
            return
        with self._lock:
            self.secrets = self.secrets | found
            for name in loggers - self._loggers:
                logging.getLogger(name).addFilter(self)
            self._loggers |= loggers

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        masked = redact_signed_urls(message)
        if any(secret in masked for secret in secrets):
            for secret in secrets:
                masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


redactor = Redactor()
"""The process-wide filter every :class:`~csvpublish.Storage` registers its options with."""
