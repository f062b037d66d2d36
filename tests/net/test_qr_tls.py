"""[QR] over DICOM TLS: a selective C-GET from a station that accepts TLS only (some TPS databases refuse C-MOVE
over TLS, so C-GET is the way), with mutual certificates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers import Serve, free_port, rtstation, station_toml, write_config
from qr_support import make_qr_data, stored
from test_tls import Pki, pki, tls_section  # noqa: F401  (the module-scoped PKI fixture)


def test_selective_c_get_over_tls(tmp_path: Path, pki: Pki) -> None:  # noqa: F811
    port = free_port()
    nodes = '[[nodes]]\nname = "puller"\nae_title = "PULLER"\nhost = "127.0.0.1"\nport = 104\nallow_retrieve = true\n'
    server_cfg = write_config(tmp_path / "server.toml", station_toml(tmp_path / "server", port,
                                                                     extra=tls_section(pki) + "\n" + nodes))
    data = make_qr_data(tmp_path / "data")
    rtstation("import", str(tmp_path / "data"), config=server_cfg)
    client_tls = f'[tls]\ncertificate = "{pki.client_crt}"\nkey = "{pki.client_key}"\nca = "{pki.ca}"\n'
    client_cfg = write_config(tmp_path / "client.toml", station_toml(tmp_path / "client", free_port(), ae="PULLER",
                                                                     extra=client_tls))
    server = Serve(server_cfg, tmp_path / "serve.log").start()
    try:
        plain = rtstation("retrieve", "--from", f"RTSTATION@127.0.0.1:{port}", "--patient", "QRA", "--plan", "A1",
                          "--get", config=client_cfg, check=False)
        assert plain.returncode != 0 and not stored(tmp_path / "client")  # a TLS-only peer: nothing in clear
        rtstation("retrieve", "--from", f"RTSTATION@localhost:{port}", "--patient", "QRA", "--plan", "A1", "--get",
                  "--tls", config=client_cfg)
    finally:
        server.kill()
    assert set(stored(tmp_path / "client")) == data.chain_a()


def test_c_move_to_a_tls_node_sends_over_tls(tmp_path: Path, pki: Pki) -> None:  # noqa: F811
    """We serve a C-MOVE whose destination node has ``tls = true`` and accepts TLS only: the C-STORE
    sub-association is made with our [tls] client settings (else nothing would arrive). The destination is a
    station under ``rtstation serve`` that started the retrieve from its command line: its receiver records the
    objects as retrieved."""
    server_port, dest_port = free_port(), free_port()
    nodes = (f'[[nodes]]\nname = "dest"\nae_title = "PULLER"\nhost = "localhost"\nport = {dest_port}\n'
             'tls = true\nallow_retrieve = true\n')
    client_tls = f'[tls]\ncertificate = "{pki.client_crt}"\nkey = "{pki.client_key}"\nca = "{pki.ca}"\n'
    server_cfg = write_config(tmp_path / "server.toml", station_toml(tmp_path / "server", server_port,
                                                                     extra=client_tls + "\n" + nodes))
    data = make_qr_data(tmp_path / "data")
    rtstation("import", str(tmp_path / "data"), config=server_cfg)
    dest_cfg = write_config(tmp_path / "dest.toml", station_toml(tmp_path / "dest", dest_port, ae="PULLER",
                                                                 extra=tls_section(pki)))
    server = Serve(server_cfg, tmp_path / "server.log").start()
    dest = Serve(dest_cfg, tmp_path / "dest.log").start()
    try:
        rtstation("retrieve", "--from", f"RTSTATION@127.0.0.1:{server_port}", "--patient", "QRA", "--plan", "A1",
                  "--move", config=dest_cfg)
    finally:
        dest.kill()
        server.kill()
    assert set(stored(tmp_path / "dest")) == data.chain_a()
    conn = sqlite3.connect(tmp_path / "dest" / "index.sqlite")
    assert conn.execute("SELECT DISTINCT source, calling_ae FROM instances").fetchall() == [("retrieve", "RTSTATION")]
