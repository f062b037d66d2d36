"""DICOM TLS on the receiver, with DCMTK ``echoscu``/``storescu +tls`` as peers and certificates made by the
``openssl`` CLI at test time; an idle TCP connection never blocks other clients; ``client_context`` (the sender's)
against DCMTK ``storescp +tls``."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from helpers import (BREAST, PEER_ENV, Serve, dcmtk, free_port, rtstation, station_toml, stored_files, wait_for,
                     write_config)

from rtstation_tui.engine.config.model import TlsConfig
from rtstation_tui.engine.config.nodes import NodeConfig
from rtstation_tui.engine.dimse.tls import TlsError, client_context, server_context


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_key: Path
    server_crt: Path
    client_key: Path
    client_crt: Path
    rogue_key: Path  # self-signed: not from our CA
    rogue_crt: Path


def openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["/usr/bin/openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"openssl {' '.join(args)}: {proc.stderr}"


def signed(cwd: Path, name: str, subject: str, ext: str) -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
            cwd=cwd)
    (cwd / f"{name}.ext").write_text(ext + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=rtstation test CA", cwd=d)
    signed(d, "server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    signed(d, "client", "/CN=TPS", "extendedKeyUsage=clientAuth")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2",
            "-subj", "/CN=rogue", cwd=d)
    return Pki(d / "ca.crt", d / "server.key", d / "server.crt", d / "client.key", d / "client.crt",
               d / "rogue.key", d / "rogue.crt")


def tls_section(pki: Pki, require_client_cert: bool = True, timeout: float = 10) -> str:
    return (f'[tls]\nenabled = true\ncertificate = "{pki.server_crt}"\nkey = "{pki.server_key}"\nca = "{pki.ca}"\n'
            f'require_client_cert = {"true" if require_client_cert else "false"}\nhandshake_timeout_s = {timeout}\n')


@pytest.fixture
def tls_serve(tmp_path: Path, port: int, pki: Pki) -> Iterator[Serve]:
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, extra=tls_section(pki, timeout=1)))
    server = Serve(cfg, tmp_path / "serve.log").start()
    yield server
    server.kill()


def audit_records(data_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for f in (data_dir / "logs").glob("audit-*.jsonl") for line in f.read_text().splitlines()]


def tls_args(key: Path, crt: Path, ca: Path) -> list[str]:
    return ["+tls", str(key), str(crt), "+cf", str(ca)]


def dcmtk_tls(tool: str, port: int, key: Path, crt: Path, ca: Path, *files: str) -> subprocess.CompletedProcess[str]:
    cmd = [dcmtk(tool), "-to", "5", "-ta", "5", "-td", "5", *tls_args(key, crt, ca), "-aet", "TPS", "-aec",
           "RTSTATION", "127.0.0.1", str(port), *files]
    return subprocess.run(cmd, env=PEER_ENV, capture_output=True, text=True, timeout=60)


def test_echo_and_store_over_tls_with_a_client_certificate(pynetdicom_mode, tls_serve, port, pki, tmp_path):
    assert "DICOM TLS" in tls_serve.text()
    assert dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca).returncode == 0
    proc = dcmtk_tls("storescu", port, pki.client_key, pki.client_crt, pki.ca, *BREAST)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: len(stored_files(tmp_path / "var")) == 4, what="4 objects stored over TLS")


def test_untrusted_or_plain_clients_are_refused_and_logged(tls_serve, port, pki, tmp_path):
    rogue = dcmtk_tls("echoscu", port, pki.rogue_key, pki.rogue_crt, pki.ca)
    assert rogue.returncode != 0
    wait_for(lambda: "closed connection from 127.0.0.1" in tls_serve.text(), what="the refusal logged")
    assert "TLS handshake failed" in tls_serve.text()
    anonymous = subprocess.run([dcmtk("echoscu"), "-to", "5", "+tla", "+cf", str(pki.ca), "-aec", "RTSTATION",
                                "127.0.0.1", str(port)], env=PEER_ENV, capture_output=True, text=True, timeout=30)
    assert anonymous.returncode != 0, "require_client_cert: a client without a certificate must be refused"
    plain = subprocess.run([dcmtk("echoscu"), "-to", "3", "-ta", "3", "-aec", "RTSTATION", "127.0.0.1", str(port)],
                           env=PEER_ENV, capture_output=True, text=True, timeout=30)
    assert plain.returncode != 0
    assert dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca).returncode == 0  # still serving
    refused = [r for r in audit_records(tmp_path / "var") if r["kind"] == "connection_refused"]
    assert len(refused) >= 3 and all(r["peer"].startswith("127.0.0.1:") for r in refused)
    opened = wait_for(lambda: [r for r in audit_records(tmp_path / "var") if r["kind"] == "association_opened"],
                      what="the TLS association audited")
    assert all(r["tls"] for r in opened)


def test_an_idle_connection_never_blocks_other_clients(pynetdicom_mode, tls_serve, port, pki):
    """The silent peer holds a TCP connection open without a ClientHello. With pynetdicom's inline handshake the
    next client would wait until the silent one gave up; here it is served at once, and the silent one is dropped
    after handshake_timeout_s (1 s in this config)."""
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        proc = dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca)
        assert proc.returncode == 0, proc.stderr
        wait_for(lambda: tls_serve.text().count("no TLS handshake within 1 s") == 3, 15,
                 what="the silent connections dropped after the handshake timeout")
        assert silent[0].recv(10) == b""  # closed by the station
    finally:
        for s in silent:
            s.close()


def test_bad_tls_settings_stop_serve_with_a_clear_message(tmp_path, port, pki):
    text = station_toml(tmp_path / "var", port, extra=tls_section(pki).replace(str(pki.server_key),
                                                                                str(tmp_path / "nope.key")))
    proc = rtstation("serve", config=write_config(tmp_path / "rt.toml", text), check=False, timeout=60)
    assert proc.returncode == 1
    assert f"[tls] key {tmp_path / 'nope.key'}: no such file" in proc.stdout
    wrong = TlsConfig(enabled=True, certificate=pki.server_crt, key=pki.client_key)
    with pytest.raises(TlsError, match="the key does not match the certificate"):
        server_context(wrong)
    with pytest.raises(TlsError, match="require_client_cert = true needs"):
        server_context(TlsConfig(enabled=True, certificate=pki.server_crt, key=pki.server_key,
                                 require_client_cert=True))


def test_client_context_speaks_tls_to_dcmtk_storescp(tmp_path, pki):
    """What the sender will use: mutual TLS to ``storescp +tls``, and a server whose name does not match is refused."""
    from pynetdicom import AE

    port = free_port()
    out = tmp_path / "scp"
    out.mkdir()
    scp = subprocess.Popen([dcmtk("storescp"), *tls_args(pki.server_key, pki.server_crt, pki.ca), "-od", str(out),
                            "-aet", "STORESCP", str(port)], env=PEER_ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    try:
        tls = TlsConfig(enabled=True, certificate=pki.client_crt, key=pki.client_key, ca=pki.ca)
        node = NodeConfig(name="QA", ae_title="STORESCP", host="127.0.0.1", port=port, tls=True)
        ae = AE("RTSTATION")
        ae.add_requested_context("1.2.840.10008.1.1")
        ctx = client_context(tls, node)
        assoc = wait_for(lambda: _associated(ae, node, ctx), 10, what="storescp +tls to listen")
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        wrong = NodeConfig(name="X", ae_title="STORESCP", host="localhost.invalid", port=port, tls=True)
        refused = ae.associate("127.0.0.1", port, ae_title="STORESCP",
                               tls_args=(client_context(tls, wrong), wrong.host))
        assert not refused.is_established  # certificate names 127.0.0.1/localhost, not this host
    finally:
        scp.kill()
        scp.wait()


def _associated(ae, node, ctx):  # type: ignore[no-untyped-def]
    assoc = ae.associate("127.0.0.1", node.port, ae_title=node.ae_title, tls_args=(ctx, node.host))
    return assoc if assoc.is_established else None


def test_sighup_turns_tls_on_for_new_connections(tmp_path, port, pki):
    import signal

    from helpers import echoscu

    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port))
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        assert echoscu(port).returncode == 0
        write_config(cfg, station_toml(tmp_path / "var", port, extra=tls_section(pki)))
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in server.text(), what="reload")
        assert "tls.enabled" in server.text()
        assert echoscu(port).returncode != 0  # plain DICOM is no longer accepted
        assert dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca).returncode == 0
    finally:
        server.kill()


def test_without_require_client_cert_a_client_without_certificate_gets_in(tmp_path, port, pki):
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port,
                                                          extra=tls_section(pki, require_client_cert=False)))
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        anonymous = subprocess.run([dcmtk("echoscu"), "-to", "5", "+tla", "+cf", str(pki.ca), "-aec", "RTSTATION",
                                    "127.0.0.1", str(port)], env=PEER_ENV, capture_output=True, text=True, timeout=30)
        assert anonymous.returncode == 0, anonymous.stderr
        rogue = dcmtk_tls("echoscu", port, pki.rogue_key, pki.rogue_crt, pki.ca)
        assert rogue.returncode != 0, "a certificate that is offered is still verified"
    finally:
        server.kill()


def test_sigterm_does_not_wait_for_a_silent_handshake(tmp_path, port, pki):
    import signal
    import time

    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, extra=tls_section(pki, timeout=60)))
    server = Serve(cfg, tmp_path / "serve.log").start()
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        assert dcmtk_tls("echoscu", port, pki.client_key, pki.client_crt, pki.ca).returncode == 0
        started = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - started < 10, "shutdown waited for the silent connection's handshake timeout"
    finally:
        silent.close()
        server.kill()


def test_sender_echoes_and_sends_over_tls_to_storescp(tmp_path, pki):
    """Nodes with tls = true: rtstation echo and send speak TLS (our client certificate, the peer checked
    against [tls] ca); the same peer without TLS on our side fails with a clear message."""
    from helpers import BREAST, rtstation

    port = free_port()
    out = tmp_path / "scp"
    out.mkdir()
    scp = subprocess.Popen([dcmtk("storescp"), *tls_args(pki.server_key, pki.server_crt, pki.ca), "-od", str(out),
                            "-aet", "STORESCP", str(port)], env=PEER_ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        tls = (f'[tls]\nenabled = false\ncertificate = "{pki.client_crt}"\nkey = "{pki.client_key}"\n'
               f'ca = "{pki.ca}"\n')
        nodes = (f'[[nodes]]\nname = "SECURE"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {port}\ntls = true\n'
                 f'[[nodes]]\nname = "PLAIN"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {port}\n'
                 f'timeout_s = 3\n')
        cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), extra=tls + nodes))
        wait_for(lambda: rtstation("echo", "SECURE", config=cfg, check=False).returncode == 0, 20,
                 what="storescp +tls answering a TLS echo")
        plain = rtstation("echo", "PLAIN", config=cfg, check=False)
        assert plain.returncode == 1 and "FAIL PLAIN" in plain.stdout
        rtstation("import", *BREAST, config=cfg)
        sent = rtstation("send", "--plan", "B1", "--to", "SECURE", "--wait", config=cfg)
        assert "SECURE: job 1, 4 instances: done" in sent.stdout
        assert len(list(out.iterdir())) == 4
    finally:
        scp.kill()
        scp.wait()
