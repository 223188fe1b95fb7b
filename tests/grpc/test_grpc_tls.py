"""FLUSSO_GRPC_TLS_CERT/_KEY: the gRPC port speaks TLS only; a client trusting the cert exports."""
from __future__ import annotations

import datetime
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.collector.helpers import make_log, make_record, make_request
from tests.traces.conftest import trace_settings

from .conftest import CALL_TIMEOUT_S, count_rows, logs_stub
from .live import GrpcLiveServer


def self_signed(tmp_path) -> tuple[bytes, object, object]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return pem, tmp_path / "cert.pem", tmp_path / "key.pem"


def test_tls_port_serves_tls_only(db_dsn, tmp_path, acme_key):
    pem, cert, key = self_signed(tmp_path)
    server = GrpcLiveServer(db_dsn, trace_settings(flusso_grpc_tls_cert=cert, flusso_grpc_tls_key=key)).start()
    try:
        request = make_request(make_record(make_log()))
        with grpc.secure_channel(server.target, grpc.ssl_channel_credentials(root_certificates=pem)) as channel:
            logs_stub(channel).Export(request, metadata=(("x-api-key", acme_key),), timeout=CALL_TIMEOUT_S)
        with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as plain:
            logs_stub(channel).Export(request, metadata=(("x-api-key", acme_key),), timeout=5)
    finally:
        server.stop()
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    assert count_rows(db_dsn, "workflow_logs") == 1


def test_half_a_tls_pair_is_refused():
    with pytest.raises(ValueError, match="FLUSSO_GRPC_TLS_CERT and FLUSSO_GRPC_TLS_KEY"):
        trace_settings(flusso_grpc_tls_cert="/nonexistent/cert.pem")
