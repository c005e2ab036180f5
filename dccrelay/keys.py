"""
The operator's key files: the registration key, the operator key, and the
keys that encrypt bots' tokens and secrets at rest.

Each is read once, at start-up; a problem is reported naming the option
and what to do, as ``twistd dcc`` reports a bad option.

Under systemd a key file may be a *credential*: ``credential:NAME`` names
the file ``NAME`` in ``$CREDENTIALS_DIRECTORY``, where ``LoadCredential=``
puts a copy that only the service's (dynamic) user can read, so that the
key's own file can stay root's, mode 0600.
"""

from __future__ import annotations

import binascii
import os
import stat
from collections.abc import Mapping

from cryptography.fernet import Fernet

MIN_KEY_LENGTH = 16

#: how to make a key for --encryption-key-file
FERNET_KEY_COMMAND = (
    'python3 -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class KeyFileError(ValueError):
    """
    A key file cannot be used; the message says why and what to do.
    """


#: how a key file option names a systemd credential
CREDENTIAL_PREFIX = "credential:"


def resolve_key_path(
    path: str, option: str, environ: Mapping[str, str] = os.environ
) -> tuple[str, bool]:
    """
    The file a key file option names, and whether systemd guards it (a
    credential), in which case its mode is systemd's business.

    :raise KeyFileError: for ``credential:NAME`` outside a unit that loads
        credentials, saying what to add.
    """
    if path.startswith(CREDENTIAL_PREFIX):
        name = path[len(CREDENTIAL_PREFIX):]
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise KeyFileError(
                f"--{option}: {path} names a systemd credential, but $CREDENTIALS_DIRECTORY "
                f"is not set: run under systemd with LoadCredential={name}:/path/to/the/file "
                "(see etc/dcc.service), or give the file's path instead"
            )
        if not name or "/" in name:
            raise KeyFileError(f"--{option}: {path}: a credential name has no '/'")
        return os.path.join(directory, name), True
    directory = environ.get("CREDENTIALS_DIRECTORY")
    inside = bool(directory) and os.path.dirname(os.path.abspath(path)) == os.path.abspath(
        directory or ""
    )
    return path, inside


def _read(given: str, option: str) -> str:
    path, guarded = resolve_key_path(given, option)
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            text = f.read(64 * 1024)
    except OSError as e:
        raise KeyFileError(f"--{option}: cannot read {path}: {e.strerror}")
    except UnicodeDecodeError:
        raise KeyFileError(f"--{option}: {path} is not UTF-8 text")
    # systemd makes credentials readable by the unit's user only, whatever
    # their mode bits say.
    if not guarded and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"--{option}: {path} may be read by other users (mode {stat.S_IMODE(mode):04o}); "
            f"make it private: chmod 600 {path}"
        )
    return text


def read_access_key(path: str, option: str) -> str:
    """
    A registration or operator key: the file's one line, at least
    :data:`MIN_KEY_LENGTH` printable ASCII characters without spaces.

    :raise KeyFileError: saying what is wrong.
    """
    key = _read(path, option).strip()
    if len(key) < MIN_KEY_LENGTH or not all("!" <= c <= "~" for c in key):
        raise KeyFileError(
            f"--{option}: {path} must hold one key of at least {MIN_KEY_LENGTH} printable "
            "ASCII characters without spaces (e.g. the output of "
            "'openssl rand -base64 32')"
        )
    return key


def read_fernet_keys(path: str, option: str = "encryption-key-file") -> list[Fernet]:
    """
    Fernet keys, one a line (blank lines and ``#`` comments ignored).  The
    first encrypts; all of them decrypt, so a key is rotated by putting a
    new one first and keeping the old ones below it until the relay has
    re-encrypted everything (it does so at start-up).

    :raise KeyFileError: saying what is wrong.
    """
    keys: list[Fernet] = []
    for number, line in enumerate(_read(path, option).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(Fernet(line))
        except (ValueError, binascii.Error):
            raise KeyFileError(
                f"--{option}: line {number} of {path} is not a Fernet key (32 url-safe "
                f"base64 bytes); make one with: {FERNET_KEY_COMMAND}"
            )
    if not keys:
        raise KeyFileError(
            f"--{option}: {path} holds no key; make one with: {FERNET_KEY_COMMAND}"
        )
    return keys
