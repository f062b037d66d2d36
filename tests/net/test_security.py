"""Association checks: calling-AE allowlist (with host/CIDR), called AE, association limit; refusals are logged
with who, from where and why."""

from __future__ import annotations

from helpers import Serve, echoscu, station_toml, storescu, write_config, DATA


def start(tmp_path, port, receiver: str) -> Serve:
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, receiver=receiver))
    return Serve(cfg, tmp_path / "serve.log").start()


def test_stranger_is_rejected_and_the_log_says_who_from_where_and_why(tmp_path, port):
    server = start(tmp_path, port, 'allowed_calling_aes = ["ECLIPSE@127.0.0.1", "QA@10.0.0.0/8"]')
    try:
        ct = DATA / "breast_boost" / "ct.0.dcm"
        proc = storescu(port, [ct], aet="STRANGER", check=False)
        assert proc.returncode != 0
        assert "rejected association from STRANGER@127.0.0.1" in server.text()
        assert "not in receiver.allowed_calling_aes" in server.text()

        proc = storescu(port, [ct], aet="QA", check=False)  # right AE, wrong network
        assert proc.returncode != 0
        assert "'QA' is allowed only from QA@10.0.0.0/8, not from 127.0.0.1" in server.text()

        assert storescu(port, [ct], aet="ECLIPSE").returncode == 0
        assert len(list((tmp_path / "var" / "store").rglob("*.dcm"))) == 1
    finally:
        server.kill()


def test_wrong_called_ae_is_rejected(tmp_path, port):
    server = start(tmp_path, port, "")
    try:
        assert echoscu(port, aec="NOTME").returncode != 0
        assert "called AE 'NOTME' is not this station ('RTSTATION')" in server.text()
        assert echoscu(port).returncode == 0
    finally:
        server.kill()


def test_association_limit_refuses_the_extra_one(tmp_path, port):
    from pynetdicom import AE

    server = start(tmp_path, port, "max_associations = 1")
    try:
        ae = AE("HOLDER")
        ae.add_requested_context("1.2.840.10008.1.1")
        held = ae.associate("127.0.0.1", port, ae_title="RTSTATION")
        assert held.is_established
        assert echoscu(port).returncode != 0
        assert "too many associations (1 open, receiver.max_associations is 1)" in server.text()
        held.release()
    finally:
        server.kill()


def test_low_disk_refuses_with_a700_and_writes_nothing(tmp_path, port):
    cfg = write_config(tmp_path / "low.toml", station_toml(tmp_path / "var", port).replace(
        "min_free_mb = 0", "min_free_mb = 1000000000"))
    server = Serve(cfg, tmp_path / "low.log").start()
    try:
        proc = storescu(port, [DATA / "breast_boost" / "ct.0.dcm"], extra=["-v"], check=False)
        assert "Received Store Response (Refused: OutOfResources)" in proc.stderr
        assert "disk nearly full" in server.text() and "0xA700" in server.text()
        assert not list((tmp_path / "var" / "store").rglob("*.dcm"))
        assert not [p for p in (tmp_path / "var" / "tmp").iterdir()]
    finally:
        server.kill()
