"""HTTPS: the server's TLS context, reloaded on SIGHUP, and clients' contexts.

The certificate and key are PEM files (``tls_cert``, ``tls_key``). A reload loads
them again into the same context: connections made after it are served with the new
certificate, open ones keep theirs, and nothing is dropped. A reload that fails (a
half-written file) keeps the certificate in use and says why in the log.
"""

from __future__ import annotations

import logging
import ssl

log = logging.getLogger("queueapp.tls")


class ServerTls:
    def __init__(self, cert: str, key: str) -> None:
        self.cert = cert
        self.key = key
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cert, key)  # ssl.SSLError or OSError: refused at start

    def reload(self) -> bool:
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            log.error("certificate not reloaded; the previous one stays in use",
                      extra={"event": "tls.reload_failed", "error": str(exc)})
            return False
        log.info("certificate reloaded", extra={"event": "tls.reloaded", "cert": self.cert})
        return True


def client_context(cacert: str | None) -> ssl.SSLContext:
    """Verifies the server (always): against ``cacert`` when given, else the system's CAs."""
    return ssl.create_default_context(cafile=cacert)
