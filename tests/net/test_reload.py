"""SIGHUP reloads the configuration under ``rtstation serve`` without dropping associations; a bad new file is
logged and the running configuration stays in force."""

from __future__ import annotations

import signal
from pathlib import Path

from helpers import DATA, Serve, storescu, station_toml, stored_files, wait_for, write_config

CT = DATA / "breast_boost" / "ct.0.dcm"
PLAN = DATA / "breast_boost" / "rtplan.dcm"


def hup(server: Serve, count: int) -> None:
    """Send SIGHUP and wait until the ``count``-th reload has been answered (applied or refused)."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: server.text().count("configuration reloaded") + server.text().count("NOT reloaded") >= count,
             what=f"reload #{count} answered")


def test_allowlist_edit_applies_on_sighup_without_dropping_a_held_association(tmp_path: Path, port: int) -> None:
    from pynetdicom import AE

    data_dir = tmp_path / "var"
    cfg = tmp_path / "rt.toml"
    write_config(cfg, station_toml(data_dir, port, receiver='allowed_calling_aes = ["ECLIPSE@127.0.0.1"]'))
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        assert storescu(port, [CT], aet="STRANGER", check=False).returncode != 0
        assert "'STRANGER' is not in receiver.allowed_calling_aes" in server.text()

        ae = AE("ECLIPSE")
        ae.add_requested_context("1.2.840.10008.1.1")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.481.5", "1.2.840.10008.1.2")
        held = ae.associate("127.0.0.1", port, ae_title="RTSTATION")
        assert held.is_established

        write_config(cfg, station_toml(data_dir, port + 1, receiver='allowed_calling_aes = ["ECLIPSE@127.0.0.1", '
                                                                     '"STRANGER@127.0.0.1/32"]'))
        hup(server, 1)
        assert "receiver.allowed_calling_aes" in server.text()
        assert "station.port changed, effective at the next restart" in server.text()

        assert held.is_established and held.send_c_echo().Status == 0  # the association in flight survived
        from pydicom import dcmread

        assert held.send_c_store(dcmread(PLAN)).Status == 0
        held.release()
        assert storescu(port, [CT], aet="STRANGER").returncode == 0  # still on the old port, now allowed
        wait_for(lambda: len(stored_files(data_dir)) == 2, what="both objects stored")
    finally:
        server.kill()


def test_disk_threshold_edit_resumes_receiving_and_a_bad_file_keeps_the_old_config(tmp_path: Path,
                                                                                    port: int) -> None:
    data_dir = tmp_path / "var"
    cfg = tmp_path / "rt.toml"
    full = station_toml(data_dir, port).replace("min_free_mb = 0", "min_free_mb = 1000000000")
    write_config(cfg, full)
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        proc = storescu(port, [CT], extra=["-v"], check=False)
        assert "Refused: OutOfResources" in proc.stderr and not stored_files(data_dir)

        write_config(cfg, full.replace("[receiver]", "[receiver]\nno_such_key = 1"))
        hup(server, 1)
        assert "configuration NOT reloaded, the running one stays in force" in server.text()
        assert "no_such_key" in server.text()
        assert "Refused: OutOfResources" in storescu(port, [CT], extra=["-v"], check=False).stderr

        write_config(cfg, station_toml(data_dir, port))  # space "returns": the threshold drops to 0
        hup(server, 2)
        assert "receiver.min_free_mb" in server.text()
        assert storescu(port, [CT]).returncode == 0
        wait_for(lambda: len(stored_files(data_dir)) == 1, what="receiving resumed")
        assert server.stop(signal.SIGTERM) == 0
    finally:
        server.kill()


def test_reload_that_cannot_apply_changes_nothing(tmp_path: Path, port: int) -> None:
    """A TLS certificate that cannot be loaded raises ReloadError before anything is swapped."""
    import pytest

    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.config.reload import ReloadError
    from rtstation_tui.engine.station import Station

    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port))
    station = Station(load_config(cfg))
    before = station.config
    write_config(cfg, station_toml(tmp_path / "var", port, receiver="min_free_mb = 7",
                                   extra=f'[tls]\nenabled = true\ncertificate = "{tmp_path}/a.crt"\n'
                                         f'key = "{tmp_path}/a.key"\n').replace("min_free_mb = 0\n", ""))
    with pytest.raises(ReloadError, match="no such file"):
        station.reload(load_config(cfg))
    assert station.config is before and station.receiver is not None and station.receiver.config is before
    station.index.close()


def test_keys_bound_at_start_are_held_until_restart(tmp_path: Path) -> None:
    from dataclasses import replace

    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.config.reload import config_changes, effective

    old = load_config(write_config(tmp_path / "a.toml", station_toml(tmp_path / "var", 11112)))
    new = replace(old, station=replace(old.station, port=11113),
                  receiver=replace(old.receiver, min_free_mb=9, max_pdu=16384),
                  import_=replace(old.import_, folder=tmp_path / "in"))
    applied, held = effective(old, new)
    assert sorted(held) == ["import.folder", "receiver.max_pdu", "station.port"]
    assert config_changes(old, applied) == ["receiver.min_free_mb"]
    assert applied.station.port == 11112 and applied.import_.folder is None and applied.receiver.min_free_mb == 9
