"""The one masking function for credentials: every message, summary and file text goes through it.

A URL's user:password (rtsp://user:pass@cam/...) and secret-looking query values (?token=...) become ***.
`Path()` turns `http://` into `http:/`, so one or no slash after the scheme is masked too.
"""

from __future__ import annotations

import re

# scheme, then the authority up to its last '@' (passwords may contain '@' or ':'), no '/' or space inside
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*:/{0,2})[^/\s?#@]*(?:@[^/\s?#@]*)*@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|pass|token|access_token|auth|apikey|api_key|key|secret|sig|signature)=)"
    r"[^&;#\s]+",
    re.IGNORECASE,
)


def mask_credentials(text: str) -> str:
    """rtsp://user:pass@host/x -> rtsp://***@host/x and ?token=abc -> ?token=***, anywhere in `text`."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<key>***", text)
