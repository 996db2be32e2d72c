"""What of a config may reach a tracker: every params-logging path sends its params through :func:`loggable_params`.

MLflow params are readable by everyone who can read the experiment, and they are immutable: a secret logged
once stays there. So, before anything is logged:

* ``tracking.*`` (at any depth: ``tracking.tracking_uri``, ``pretrain.tracking.experiment``) is dropped. It says
  where runs go, not what a run did, and a tracking URI can carry credentials (``https://user:token@host``).
* The value of any key named like a secret (a word of the key is ``token``, ``secret``, ``password``, ``key``,
  ``credential``, ``auth``...: ``hf_token``, ``api_key``, ``AWS_SECRET_ACCESS_KEY``, ``db.password``) is replaced
  by ``***``; the key stays, so a run still shows that one was set.
* Credentials inside any other value (``scheme://user:password@host``) are replaced by ``***`` as well.

:func:`loggable_dict` applies the same rules to a nested dict logged as an artifact (``config.yaml``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"
# A key component named so is left out with everything under it.
DROPPED_SECTIONS = frozenset({"tracking"})
# A key is secret when one of its words is one of these (or ends with one: "apikey", "accesstoken").
SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "key",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "cookie",
)

_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")


def is_secret_key(key: str) -> bool:
    """Whether any word of ``key`` (split at ``._-/:``, spaces and camelCase humps) names a secret."""
    words = [w.lower() for w in _WORDS.findall(key)]
    return any(w.endswith(SECRET_WORDS) for w in words)


def is_dropped_key(key: str) -> bool:
    """Whether ``key`` lies in a section that is never logged (``tracking.*``)."""
    return any(part in DROPPED_SECTIONS for part in re.split(r"[./]", key))


def scrub_value(value: Any) -> Any:
    """``value`` with credentials in URLs replaced (``https://u:p@host`` -> ``https://***@host``); else as is."""
    if isinstance(value, str) and "@" in value:
        return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)
    return value


def loggable_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that may be logged: ``tracking.*`` dropped, secret-named values and URL credentials redacted."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        key = str(key)
        if is_dropped_key(key):
            continue
        out[key] = REDACTED if is_secret_key(key) and value not in (None, "") else scrub_value(value)
    return out


def loggable_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`loggable_params` for a nested dict (a config logged as a YAML/JSON artifact)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in DROPPED_SECTIONS:
            continue
        if isinstance(value, Mapping):
            out[key] = loggable_dict(value)
        elif is_secret_key(key) and value not in (None, ""):
            out[key] = REDACTED
        elif isinstance(value, list):
            out[key] = [loggable_dict(v) if isinstance(v, Mapping) else scrub_value(v) for v in value]
        else:
            out[key] = scrub_value(value)
    return out
