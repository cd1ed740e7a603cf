"""One-line causes and fixes for origins that cannot be reached.

requests, urllib3, httpx and botocore wrap the socket error two or three
levels deep ("Max retries exceeded with url ... (Caused by NewConnectionError(
...))"); a pod's log should instead say which of the usual causes it is and
what to change. The chain is walked by type and errno, with the strings the
C library prints as a last resort (httpx and botocore sometimes keep only text).
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

_DNS_TEXT = ("Name or service not known", "Temporary failure in name resolution", "nodename nor servname",
             "No address associated with hostname", "getaddrinfo failed", "Failed to resolve",
             "NameResolutionError")
_REFUSED_TEXT = ("Connection refused", "ECONNREFUSED")
_UNREACH_TEXT = ("Network is unreachable", "No route to host")


def _chain(err: BaseException) -> list[BaseException]:
    """The error and everything it wraps (cause, context, urllib3's reason,
    exception args that are exceptions), each once."""
    seen: list[BaseException] = []
    todo = [err]
    while todo and len(seen) < 32:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        kwargs = getattr(e, "kwargs", None)  # botocore keeps the socket error there
        for nxt in (getattr(e, "reason", None), getattr(e, "error", None), e.__cause__, e.__context__,
                    *(kwargs.values() if isinstance(kwargs, dict) else ()),
                    *[a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def _is_proxy(e: BaseException) -> bool:
    return "Proxy" in type(e).__name__


def host_of(url: str) -> str:
    p = urlsplit(url)
    host = p.hostname or url
    return f"{host}:{p.port}" if p.port else host


def cause(err: BaseException) -> str | None:
    """'dns', 'refused', 'proxy', 'unreachable', 'reset', 'timeout', 'tls' or None."""
    chain = _chain(err)
    text = " | ".join(str(e) for e in chain)
    if any(_is_proxy(e) for e in chain) or "Unable to connect to proxy" in text:
        return "proxy"
    for e in chain:
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return "dns"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return "refused"
        if getattr(e, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "unreachable"
    if any(t in text for t in _DNS_TEXT):
        return "dns"
    if any(t in text for t in _REFUSED_TEXT):
        return "refused"
    if any(t in text for t in _UNREACH_TEXT):
        return "unreachable"
    if any(isinstance(e, ConnectionResetError) for e in chain) or "Connection reset by peer" in text:
        return "reset"
    if any("SSL" in type(e).__name__ or "Certificate" in type(e).__name__ for e in chain) or \
            "CERTIFICATE_VERIFY_FAILED" in text:
        return "tls"
    if any("Timeout" in type(e).__name__ or isinstance(e, TimeoutError) for e in chain):
        return "timeout"
    return None


def describe(err: BaseException, url: str, setting: str | None = None) -> str | None:
    """`cannot reach HOST: connection refused; <fix>`, or None when the error
    is not one of the known connection failures. `setting` names the variable
    that chose the URL (HF_ENDPOINT, AWS_ENDPOINT_URL), for the fix."""
    kind = cause(err)
    if kind is None:
        return None
    host = host_of(url)
    check = f"check {setting}={url}" if setting else f"check the URL {url}"
    if kind == "dns":
        return (f"cannot resolve host {urlsplit(url).hostname or host} (DNS lookup failed); {check}, "
                f"and the pod's DNS (or set HTTPS_PROXY if the cluster reaches the internet through a proxy)")
    if kind == "refused":
        return (f"cannot reach {host}: connection refused (nothing listens there); {check} and its port, "
                f"and that the origin or mirror is running")
    if kind == "proxy":
        return (f"cannot reach {host} through the proxy: the proxy refused or failed the connection; "
                f"check HTTPS_PROXY/HTTP_PROXY, or add {urlsplit(url).hostname} to NO_PROXY")
    if kind == "unreachable":
        return (f"cannot reach {host}: network unreachable; {check}, the pod's network policy and egress "
                f"(or set HTTPS_PROXY)")
    if kind == "reset":
        return (f"{host}: connection reset by the origin or a proxy in between; retried (if it persists, "
                f"{check} and any proxy or load balancer in front of it)")
    if kind == "tls":
        return (f"{host}: TLS certificate not trusted; set REQUESTS_CA_BUNDLE (AWS_CA_BUNDLE for s3) "
                f"to the CA that signed it")
    return f"{host}: connection timed out; {check}, the pod's egress and any proxy (HTTPS_PROXY)"
