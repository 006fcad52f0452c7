"""Which transport errors are certificate failures (never retried)."""

import ssl

import urllib3

from chunk_worker.connections import certificate_refused


def test_a_certificate_failure_is_found_under_urllib3s_wrapping():
    root = ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer certificate")
    wrapped = urllib3.exceptions.SSLError(urllib3.exceptions.SSLError(root))
    assert certificate_refused(wrapped)


def test_other_ssl_and_transport_errors_are_not_certificate_failures():
    assert not certificate_refused(urllib3.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")))
    assert not certificate_refused(urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError()))
