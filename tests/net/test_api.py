"""The control API of a running ``rtstation serve``, over its Unix socket, with real DICOM peers (storescu,
storescp): what a script or an attached console sees, the event stream, errors, and the CLI using it."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pydicom
import pytest

from apiclient import CURL, EventReader, curl
from helpers import BREAST, ROOT, Serve, echoscu, free_port, rtstation, station_toml, storescu, wait_for, write_config
from peers import StoreSCP
from test_tls import pki  # noqa: F401  (a fixture: a CA and a server certificate)
from waiting import until

PLAN = "1.2.246.352.71.5.320687012.24189.20090603083342"  # breast_boost's RTPLAN, label B1


def sock_of(data_dir: Path) -> Path:
    return data_dir / "api.sock"


def received_breast(port: int, data_dir: Path) -> None:
    storescu(port, BREAST)
    wait_for(lambda: curl(sock_of(data_dir), "/api/v1/status")[1]["counts"]["instances"] == 4, what="4 indexed")


def test_status_patients_plans_after_storescu_sends(serve: Serve, port: int, data_dir: Path) -> None:
    sock = sock_of(data_dir)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660 and stat.S_ISSOCK(sock.stat().st_mode)
    received_breast(port, data_dir)
    code, status = curl(sock, "/api/v1/status")
    assert code == 200 and status["pid"] == serve.proc.pid and status["receiver_state"] == "listening"
    assert status["counts"] == {"patients": 1, "plans": 1, "instances": 4} and status["address"].endswith(str(port))
    code, patients = curl(sock, "/api/v1/patients?text=1234")
    assert code == 200 and patients["total"] == 1 and patients["items"][0]["patient_id"] == "123456"
    assert curl(sock, "/api/v1/patients?text=nobody")[1]["total"] == 0
    code, plans = curl(sock, "/api/v1/plans?limit=1")
    assert plans["total"] == 1 and plans["items"][0]["label"] == "B1" and plans["items"][0]["plan_uid"] == PLAN
    assert curl(sock, "/api/v1/plans?offset=1")[1]["items"] == []
    state = plans["items"][0]["state"]
    other = "ready" if state != "ready" else "waiting"
    assert curl(sock, f"/api/v1/plans?state={state}")[1]["total"] == 1
    assert curl(sock, f"/api/v1/plans?state={other}")[1]["total"] == 0
    code, details = curl(sock, f"/api/v1/plans/{PLAN}")
    assert code == 200 and details["label"] == "B1" and details["machines"] == ["txmachine"]
    assert {g["modality"] for g in details["chain"]} >= {"CT", "RTPLAN", "RTDOSE"}
    code, bundle = curl(sock, f"/api/v1/plans/{PLAN}/bundle")
    assert code == 200 and len(bundle["instances"]) == 4 and bundle["patient_id"] == "123456"
    code, tree = curl(sock, "/api/v1/tree")
    assert tree[0]["plans"][0]["plan_uid"] == PLAN


def test_errors_are_json_with_the_fitting_status(serve: Serve, port: int, data_dir: Path) -> None:
    sock = sock_of(data_dir)
    received_breast(port, data_dir)
    assert curl(sock, "/api/v1/patients?limit=many") == (400, {"error": "limit: must be an integer, got 'many'",
                                                                "status": 400, "field": "limit"})
    code, err = curl(sock, "/api/v1/plans?state=lost")
    assert code == 400 and err["field"] == "state" and "ready-incomplete" in err["error"]
    code, err = curl(sock, "/api/v1/send", method="POST", data={"plan": "B1"})
    assert code == 400 and err["field"] == "to"
    code, err = curl(sock, "/api/v1/send", method="POST", data={"plan": "B1", "to": ["NOPE"]})
    assert code == 400 and err["field"] == "to" and "NOPE" in err["error"]
    code, err = curl(sock, "/api/v1/send", method="POST", data={"plan": "NO_SUCH", "to": ["X@127.0.0.1:1"]})
    assert code == 404 and err["field"] == "plan"
    assert curl(sock, "/api/v1/plans/1.2.3")[0] == 404
    assert curl(sock, "/api/v1/patients/nobody/plans")[0] == 404
    assert curl(sock, "/api/v1/jobs/77")[0] == 404
    assert curl(sock, "/api/v1/jobs/seven")[1]["field"] == "job_id"
    assert curl(sock, "/api/v1/nodes/NOPE/echo", method="POST")[0] == 404
    assert curl(sock, "/api/v1/no/such/thing") == (404, {"error": "no resource /api/v1/no/such/thing", "status": 404})
    assert curl(sock, "/api/v1/audit?day=../../etc/passwd")[1]["field"] == "day"
    code, err = curl(sock, "/api/v1/events?since=abc")
    assert code == 400 and err["field"] == "since"
    assert "Traceback" not in serve.text()


async def test_send_through_the_api_shows_job_progress_on_the_event_stream(serve: Serve, port: int, data_dir: Path,
                                                                          tmp_path: Path) -> None:
    sock = sock_of(data_dir)
    await asyncio.to_thread(received_breast, port, data_dir)
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        async with EventReader(sock) as reader:
            await until(lambda: reader.events("hello"), what="the stream's hello")
            code, rows = await asyncio.to_thread(curl, sock, "/api/v1/send", method="POST",
                                                 data={"plan": "B1", "to": [scp.spec]})
            assert code == 201 and rows[0]["instances"] == 4 and rows[0]["job_id"] is not None
            job = rows[0]["job_id"]
            await until(lambda: any(e["job_id"] == job and e["state"] == "done" for e in reader.events("JobChanged")),
                        30, what="the job's done event")
            progress = [e for e in reader.events("JobProgress") if e["job_id"] == job]
            assert progress and progress[-1]["done"] == 4 and progress[-1]["total"] == 4
            assert reader.seqs == sorted(reader.seqs) and len(set(reader.seqs)) == len(reader.seqs)
        assert len(scp.files()) == 4
        code, info = await asyncio.to_thread(curl, sock, f"/api/v1/jobs/{job}")
        assert info["state"] == "done" and len(info["items"]) == 4
        # a done job cannot be cancelled: a conflict with its state
        code, err = await asyncio.to_thread(curl, sock, f"/api/v1/jobs/{job}/cancel", method="POST")
        assert code == 409 and "done" in err["error"]
    finally:
        scp.stop()


async def test_reconnecting_with_since_gets_what_was_missed(serve: Serve, port: int, data_dir: Path) -> None:
    sock = sock_of(data_dir)
    async with EventReader(sock, since=0) as first:
        await asyncio.to_thread(received_breast, port, data_dir)
        await until(lambda: first.events("InstancesStored"), what="stored events")
        last = first.seqs[-1]
    await asyncio.to_thread(storescu, port, BREAST)  # while no client listens: duplicates, a log line
    await asyncio.to_thread(wait_for, lambda: "0 failures, 4 duplicates" in serve.text(), what="the 2nd receive")
    async with EventReader(sock, since=last) as again:
        await until(lambda: again.events("AssociationClosed"), what="catch-up")
        assert again.seqs[0] == last + 1  # nothing lost, nothing repeated
        assert again.seqs == list(range(last + 1, again.seqs[-1] + 1))
        assert not again.events("reset")


async def test_beyond_the_replay_buffer_the_client_is_told_to_reread(tmp_path: Path, port: int,
                                                                     data_dir: Path) -> None:
    config = write_config(tmp_path / "small.toml", station_toml(data_dir, port, extra="[api]\nreplay_events = 100\n"))
    serve = Serve(config, tmp_path / "serve.log").start()
    try:
        sock = sock_of(data_dir)
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s:
            for _ in range(150):  # each refused cancel is a logged request: a log event
                async with s.post("http://localhost/api/v1/jobs/1/cancel") as r:
                    assert r.status == 404
        async with EventReader(sock, since=1) as late:
            await until(lambda: late.events("reset"), what="the reset message")
            reset = late.events("reset")[0]
            assert reset["missed_from"] == 2 and reset["oldest"] > 2
    finally:
        serve.stop()


async def test_a_client_that_stops_reading_is_dropped_and_the_receiver_never_waits(tmp_path: Path, port: int,
                                                                                    data_dir: Path) -> None:
    config = write_config(tmp_path / "slow.toml", station_toml(data_dir, port, extra="[api]\nclient_timeout_s = 1\n"))
    serve = Serve(config, tmp_path / "serve.log").start()
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock = sock_of(data_dir)
        stalled.connect(str(sock))
        stalled.sendall(b"GET /api/v1/events?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads a byte
        async with EventReader(sock) as healthy:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s:
                for _ in range(2500):  # ~2,500 log events of ~200 bytes: far more than a socket buffer holds
                    async with s.post("http://localhost/api/v1/jobs/1/cancel") as r:
                        assert r.status == 404
            await until(lambda: "event stream client dropped" in serve.text(), 30, what="the stalled client dropped")
            # meanwhile the station receives and answers as ever, and the reading client missed nothing
            assert (await asyncio.to_thread(echoscu, port)).returncode == 0
            await asyncio.to_thread(received_breast, port, data_dir)
            await until(lambda: healthy.events("InstancesStored"), what="the healthy client's events")
            assert healthy.seqs == list(range(healthy.seqs[0], healthy.seqs[-1] + 1))
            assert not healthy.events("reset")
    finally:
        stalled.close()
        serve.stop()


def test_rtstation_send_goes_through_the_api_when_a_station_serves(serve: Serve, port: int, data_dir: Path,
                                                                   config: Path, tmp_path: Path) -> None:
    received_breast(port, data_dir)
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        proc = rtstation("send", "--plan", "B1", "--to", scp.spec, "--wait", "--json", config=config)
        rows = json.loads(proc.stdout)
        assert rows[0]["state"] == "done" and rows[0]["instances"] == 4 and len(scp.files()) == 4
        assert "api: POST /api/v1/send from pid" in serve.text()
        # the other commands that act on the live station ask it too
        assert rtstation("queue", "cancel", str(rows[0]["job_id"]), config=config, check=False).returncode == 1
        assert "api: POST /api/v1/jobs/1/cancel" in serve.text()
        echo = json.loads(rtstation("echo", scp.spec, "--json", config=config).stdout)
        assert echo[0]["ok"] is True and f"api: POST /api/v1/nodes/{scp.spec}/echo" in serve.text()
        shown = json.loads(rtstation("show", "--json", config=config).stdout)
        assert shown[0]["plans"][0]["plan_uid"] == PLAN
        test = json.loads(rtstation("rules", "test", "--plan", "B1", "--json", config=config).stdout)
        assert test["plan"]["plan_uid"] == PLAN and test["rules"] == []
    finally:
        scp.stop()


def test_a_send_through_the_api_carries_its_level_and_transform(serve: Serve, port: int, data_dir: Path,
                                                                 config: Path, tmp_path: Path) -> None:
    """``send --patient ID --anonymize basic`` asked of a running station: the station queues the whole patient as
    de-identified copies, exactly as the offline command would; a wrong profile is refused by name, nothing queued."""
    received_breast(port, data_dir)
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        bad = rtstation("send", "--patient", "123456", "--to", scp.spec, "--anonymize", "nope", config=config,
                        check=False)
        assert bad.returncode == 2 and "unknown anonymize profile 'nope'" in bad.stderr
        assert curl(sock_of(data_dir), "/api/v1/jobs")[1] == []
        proc = rtstation("send", "--patient", "123456", "--to", scp.spec, "--anonymize", "basic", "--wait", "--json",
                         config=config)
        rows = json.loads(proc.stdout)
        assert [(r["state"], r["instances"], r["transform"]) for r in rows] == [("done", 4, "anonymize:basic")]
        assert "api: POST /api/v1/send from pid" in serve.text()
        assert len(scp.files()) == 4
        assert not any("123456" == pydicom.dcmread(f, stop_before_pixels=True).PatientID for f in scp.files())
    finally:
        scp.stop()


def test_rtstation_send_works_offline_without_a_station(config: Path, port: int, data_dir: Path,
                                                        tmp_path: Path) -> None:
    serve = Serve(config, tmp_path / "serve.log").start()
    received_breast(port, data_dir)
    serve.stop()
    assert not sock_of(data_dir).exists()  # the station took its socket with it
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        rows = json.loads(rtstation("send", "--plan", "B1", "--to", scp.spec, "--wait", "--json", config=config).stdout)
        assert rows[0]["state"] == "done" and len(scp.files()) == 4
    finally:
        scp.stop()


def test_rtstation_stop_stops_a_serving_station_gracefully(serve: Serve, config: Path, data_dir: Path) -> None:
    proc = rtstation("stop", config=config)
    assert f"stopped (pid {serve.proc.pid})" in proc.stdout
    assert serve.proc.wait(10) == 0 and "stopped" in serve.text().splitlines()[-1]
    assert not sock_of(data_dir).exists()
    again = rtstation("stop", config=config, check=False)
    assert again.returncode == 1 and "no station answers" in again.stderr


async def test_health_is_503_when_the_station_has_no_receiver(config: Path, data_dir: Path) -> None:
    """A console run with --no-listen: the API serves, and says the receiver is off."""
    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.station import Station

    station = Station(load_config(config), receive=False)
    await station.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock_of(data_dir)))) as s:
            async with s.get("http://localhost/api/v1/health") as r:
                body = await r.json()
                assert r.status == 503 and "off" in body["error"]
            async with s.post("http://localhost/api/v1/stop") as r:  # only its console may stop it
                assert r.status == 409
    finally:
        await station.stop()


def readme_examples() -> list[list[str]]:
    """The curl lines of the README's Control API section, split as a shell would (no shell runs them)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- api-examples:start -->", 1)[1].split("<!-- api-examples:end -->", 1)[0]
    return [shlex.split(line.strip(), comments=True) for line in block.splitlines() if line.strip()]


def test_the_readme_curl_examples_run_as_written(tmp_path: Path, port: int) -> None:
    """From the directory holding var/ (the default data_dir), with node QA a real storescp."""
    scp = StoreSCP(tmp_path / "scp").start()
    toml = station_toml(Path("var"), port).replace('data_dir = "var"', 'data_dir = "./var"')
    toml += f'[[nodes]]\nname = "QA"\nae_title = "{scp.aet}"\nhost = "127.0.0.1"\nport = {scp.port}\n'
    config = write_config(tmp_path / "rtstation.toml", toml)
    proc = subprocess.Popen([sys.executable, "-m", "rtstation_tui", "serve", "--config", str(config)], cwd=tmp_path,
                            stdout=open(tmp_path / "serve.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "serving" in (tmp_path / "serve.log").read_text(), 30, what="serve")
        received_breast(port, tmp_path / "var")
        examples = readme_examples()
        assert len(examples) >= 10 and all(cmd[0] == "curl" for cmd in examples)
        for cmd in examples:
            out = subprocess.run(["/usr/bin/curl", *cmd[1:]], cwd=tmp_path, capture_output=True, text=True,
                                 timeout=60)
            if "/events" in cmd[-1]:  # the stream: cut by --max-time (curl exit 28) after its events
                assert out.returncode == 28 and "event: hello" in out.stdout
                assert "event: AssociationClosed" in out.stdout
                continue
            assert out.returncode == 0, (cmd, out.stderr)
            answer = json.loads(out.stdout)
            assert not (isinstance(answer, dict) and {"error", "status"} <= answer.keys()), (cmd, answer)
        wait_for(lambda: len(scp.files()) == 4, what="the README's send to arrive")
    finally:
        proc.terminate()
        proc.wait(30)
        scp.stop()


def test_only_the_stations_user_and_group_may_connect(tmp_path: Path, port: int) -> None:
    """Socket 0660 in a 0750 data_dir: another user is refused, a member of the station's group is not."""
    assert os.geteuid() == 0, "this test runs curl as other users: it needs root (the test machines run as root)"
    # outside pytest's 0700 tree (and not tempfile.tempdir, which an in-process station points at its data_dir)
    base = Path(tempfile.mkdtemp(prefix="rtst-sec-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        base.chmod(0o711)
        data_dir = base / "var"
        config = write_config(tmp_path / "rtstation.toml", station_toml(data_dir, port))
        serve = Serve(config, tmp_path / "serve.log").start()
        try:
            data_dir.chmod(0o751)  # even with the directory open to others, the socket's own mode refuses them
            url = [CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(data_dir / "api.sock"),
                   "http://localhost/api/v1/status"]
            other = subprocess.run(url, user=65534, group=65534, extra_groups=[], capture_output=True, text=True)
            assert other.returncode == 7 and other.stdout == "000"  # curl: could not connect (permission denied)
            member = subprocess.run(url, user=65534, group=os.getgid(), extra_groups=[], capture_output=True,
                                    text=True)
            assert member.returncode == 0 and member.stdout == "200"
        finally:
            serve.stop()
    finally:
        shutil.rmtree(base)


def test_configuration_edits_go_through_the_file_and_the_loader(serve: Serve, config: Path, data_dir: Path) -> None:
    sock = sock_of(data_dir)
    before = config.read_text()
    code, answer = curl(sock, "/api/v1/config/edit", method="POST", data={"edits": [
        {"op": "set", "section": "receiver", "key": "min_free_mb", "value": 123},
        {"op": "add_entry", "array": "nodes", "values": {"name": "QA2", "ae_title": "QA2", "host": "127.0.0.1",
                                                         "port": 11300}}]})
    assert code == 200 and set(answer["changed"]) == {"receiver.min_free_mb", "nodes"}
    assert curl(sock, "/api/v1/config")[1]["receiver"]["min_free_mb"] == 123
    assert [n["name"] for n in curl(sock, "/api/v1/nodes")[1]] == ["QA2"]
    assert "min_free_mb = 123" in config.read_text() and (config.parent / "rtstation.toml.bak").read_text() == before
    edited = config.read_text()
    # refused edits change nothing: a bad value (the loader's message), a path, an unknown entry
    code, err = curl(sock, "/api/v1/config/edit", method="POST", data={"edits": [
        {"op": "set", "section": "receiver", "key": "min_free_mb", "value": -5}]})
    assert code == 400 and err["field"] == "receiver.min_free_mb" and "min_free_mb" in err["error"]
    code, err = curl(sock, "/api/v1/config/edit", method="POST", data={"edits": [
        {"op": "set", "section": "station", "key": "data_dir", "value": "/tmp"}]})
    assert code == 400 and "path" in err["error"]
    code, err = curl(sock, "/api/v1/config/edit", method="POST", data={"edits": [
        {"op": "delete_entry", "array": "nodes", "name": "NOPE"}]})
    assert code == 404
    assert config.read_text() == edited and curl(sock, "/api/v1/config")[1]["receiver"]["min_free_mb"] == 123


def test_the_optional_tcp_listener_needs_the_bearer_token_and_speaks_tls(tmp_path: Path, port: int,
                                                                          data_dir: Path, pki) -> None:
    tcp = free_port()
    extra = (f'[api]\ntcp_port = {tcp}\ntcp_tls = true\n'
             f'[tls]\ncertificate = "{pki.server_crt}"\nkey = "{pki.server_key}"\n')
    config = write_config(tmp_path / "tcp.toml", station_toml(data_dir, port, extra=extra))
    serve = Serve(config, tmp_path / "serve.log").start()
    try:
        wait_for(lambda: "control API also on https://127.0.0.1" in serve.text(), what="the TCP listener")
        token_file = data_dir / "api.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o640
        token = token_file.read_text().strip()
        url = f"https://127.0.0.1:{tcp}/api/v1/status"
        base = [CURL, "-s", "--cacert", str(pki.ca), "-w", "\n%{http_code}"]

        def call(*extra_args: str) -> tuple[int, Any]:
            out = subprocess.run([*base, *extra_args, url], capture_output=True, text=True, timeout=30)
            text, _, code = out.stdout.rpartition("\n")
            return int(code), json.loads(text) if text else None

        code, err = call()
        assert code == 401 and "bearer token" in err["error"]
        assert call("-H", "Authorization: Bearer wrong-token-wrong-token")[0] == 401
        code, status = call("-H", f"Authorization: Bearer {token}")
        assert code == 200 and status["pid"] == serve.proc.pid
        plain = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", url.replace("https", "http"),
                                "-H", f"Authorization: Bearer {token}"], capture_output=True, text=True, timeout=30)
        assert plain.stdout != "200"  # no plain HTTP on a TLS listener
        assert curl(sock_of(data_dir), "/api/v1/status")[0] == 200  # the socket needs no token
        assert "refused GET /api/v1/status from 127.0.0.1: no valid bearer token" in serve.text()
    finally:
        serve.stop()


def test_a_killed_stations_socket_is_stale_not_live(config: Path, tmp_path: Path, data_dir: Path) -> None:
    """SIGKILL leaves the socket file: commands work offline, and the next serve takes the path over."""
    first = Serve(config, tmp_path / "serve.log").start()
    first.kill()
    assert sock_of(data_dir).exists()
    shown = rtstation("show", "--json", config=config)  # offline: nobody answers on the stale socket
    assert shown.returncode == 0 and json.loads(shown.stdout) == []
    stop = rtstation("stop", config=config, check=False)
    assert stop.returncode == 1 and "no station answers" in stop.stderr
    second = Serve(config, tmp_path / "serve2.log").start()
    try:
        assert curl(sock_of(data_dir), "/api/v1/status")[1]["pid"] == second.proc.pid
    finally:
        second.stop()


async def test_a_socket_path_too_long_costs_the_api_not_the_receiver(tmp_path: Path, port: int) -> None:
    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.station import Station

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    config = load_config(write_config(tmp_path / "long.toml", station_toml(deep, port)))
    station = Station(config)
    await station.start()
    try:
        assert station.api_server is not None and not station.api_server.serving
        assert station.status().receiver_state == "listening"
        assert (await asyncio.to_thread(echoscu, port)).returncode == 0
    finally:
        await station.stop()
