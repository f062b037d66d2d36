"""[FAST] scheduling without peers: ``[[groups]]`` (validation, expansion, rules, the editor's file edits), the
rate limit's token bucket on a fake clock, and the queue's priority order. The pacing against a real peer and the
manual-before-backlog order are in ``tests/net/test_scheduling.py``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from helpers import ROOT

from rtstation_tui.engine.config.groups import GroupConfig, expand, resolve_targets
from rtstation_tui.engine.config.model import ConfigError, load_config
from rtstation_tui.engine.config.nodes import NodeConfig
from rtstation_tui.engine.config.rules import RuleConfig
from rtstation_tui.engine.config.tomlfile import ConfigFile
from rtstation_tui.engine.outbound.queue import JobQueue, NewItem
from rtstation_tui.engine.outbound.ratelimit import NodeLimit, Rates
from rtstation_tui.engine.outbound.rules import PlanFacts, decide

SAMPLE = ROOT / "sample_config" / "rtstation.toml"
NODES = "".join(f'[[nodes]]\nname = "{n}"\nae_title = "{n}"\nhost = "127.0.0.1"\nport = 104\n{extra}\n'
                for n, extra in (("QA", ""), ("PHYS", ""), ("OFF", "enabled = false\n")))
FACTS = PlanFacts("1.2.3", "P1", "QA_1", (), "APPROVED", ("ECLIPSE",), ("RTPLAN",), True, 0)


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "rt.toml"
    path.write_text(NODES + text)
    return load_config(path)


@pytest.mark.parametrize("groups, key, message", [
    ('name = "QA-ALL"\nnodes = ["QA", "NOPE"]', "groups[0] ('QA-ALL').nodes[1]", "unknown node 'NOPE'; nodes: QA, "
     "PHYS, OFF"),
    ('name = "QA"\nnodes = ["PHYS"]', "groups[0] ('QA').name", "'QA' is already the name of a node; a group needs a "
     "name of its own (nodes: QA, PHYS, OFF)"),
    ('name = "EMPTY"\nnodes = []', "groups[0] ('EMPTY').nodes", "a group needs at least one node"),
    ('name = "A"\nnodes = ["QA"]\n[[groups]]\nname = "B"\nnodes = ["A", "PHYS"]', "groups[1] ('B').nodes[0]",
     "'A' is a group; groups cannot contain groups: list its nodes (QA) instead"),
    ('name = "A"\nnodes = ["QA"]\n[[groups]]\nname = "A"\nnodes = ["PHYS"]', "groups[1] ('A').name",
     "group names must be unique"),
    ('name = "A"\nnodes = ["QA", "QA"]', "groups[0] ('A').nodes[1]", "'QA' is listed twice"),
    ('name = "A"\nmembers = ["QA"]', "groups[0].members", "unknown key; allowed here: name, nodes"),
])
def test_a_bad_group_is_refused_naming_file_key_and_what_is_allowed(tmp_path, groups, key, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"[[groups]]\n{groups}\n")
    assert err.value.file == str(tmp_path / "rt.toml") and err.value.key == key and message in err.value.message


def test_a_rule_may_target_a_group_and_an_unknown_target_names_the_groups_too(tmp_path):
    config = load(tmp_path, '[[groups]]\nname = "QA-ALL"\nnodes = ["QA", "PHYS"]\n'
                            '[[rules]]\nname = "r"\ntargets = ["QA-ALL"]\n')
    assert config.rules[0].targets == ("QA-ALL",)
    with pytest.raises(ConfigError, match=r"unknown node 'QAALL'; nodes: QA, PHYS, OFF; groups: QA-ALL"):
        load(tmp_path, '[[groups]]\nname = "QA-ALL"\nnodes = ["QA"]\n[[rules]]\nname = "r"\ntargets = ["QAALL"]\n')


def test_the_sample_configs_group_example_loads_when_uncommented(tmp_path):
    text = SAMPLE.read_text()
    example = '# [[groups]]\n# name = "QA-ALL"\n# nodes = ["QA", "PHYSICS"]\n'
    assert example in text and "max_instances_per_s = 20" in text and "max_mb_per_s = 5" in text
    path = tmp_path / "rt.toml"
    physics = '[[nodes]]\nname = "PHYSICS"\nae_title = "PHYS"\nhost = "127.0.0.1"\nmax_instances_per_s = 20\n'
    path.write_text(text.replace(example, example.replace("# ", "")) + physics)
    config = load_config(path)
    assert config.groups == (GroupConfig("QA-ALL", ("QA", "PHYSICS")),)
    assert config.node("PHYSICS").max_instances_per_s == 20  # type: ignore[union-attr]


def test_expansion_keeps_order_sends_each_node_once_and_leaves_a_disabled_member_out(tmp_path):
    config = load(tmp_path, '[[groups]]\nname = "G1"\nnodes = ["PHYS", "OFF", "QA"]\n'
                            '[[groups]]\nname = "G2"\nnodes = ["QA"]\n')
    assert expand(["G1", "G2", "QA"], config.groups) == ("PHYS", "OFF", "QA")
    assert [n.name for n in resolve_targets(["G2", "G1", "X@h:1"], config.nodes, config.groups)] == \
        ["QA", "PHYS", "X@h:1"]
    off = load(tmp_path, '[[groups]]\nname = "DARK"\nnodes = ["OFF"]\n')
    with pytest.raises(ValueError, match=r"group DARK: every node is disabled \(OFF\)"):
        resolve_targets(["DARK"], off.nodes, off.groups)
    with pytest.raises(ValueError, match=r"unknown node or group 'nope'.*a group \(DARK\) or AET@host:port"):
        resolve_targets(["nope"], off.nodes, off.groups)


def test_a_rule_naming_a_group_decides_for_its_nodes_and_says_what_the_group_stands_for():
    groups = (GroupConfig("QA-ALL", ("QA", "PHYS")),)
    [d] = decide((RuleConfig(name="r", targets=("QA-ALL", "QA")),), FACTS, groups)
    assert d.outcome == "send" and d.targets == ("QA", "PHYS") and d.named == ("QA-ALL", "QA")
    assert d.describe() == "matched: send to QA-ALL, QA = QA, PHYS"


def test_the_nodes_editor_keeps_groups_in_step_and_the_file_keeps_them(tmp_path):
    """Rename a node: its groups follow; delete it: a group left empty goes, and so does the rule naming that group
    alone. Every other line, comments of [[groups]] included, stays as written."""
    from rtstation_tui.ui.screens.nodes import delete_node, rename_targets

    path = tmp_path / "rt.toml"
    path.write_text(NODES + '# the physicists\' set\n[[groups]]\nname = "QA-ALL"  # both\nnodes = ["QA", "PHYS"]\n\n'
                    '[[groups]]\nname = "SOLO"\nnodes = ["PHYS"]\n\n[[rules]]\nname = "r"\ntargets = ["SOLO"]\n')
    cf = ConfigFile(path)
    cf.update_entry("nodes", "PHYS", {"name": "PHYSICS"})
    rename_targets(cf, "PHYS", "PHYSICS", [], [("QA-ALL", ["QA", "PHYS"]), ("SOLO", ["PHYS"])])
    config = cf.save()
    assert [g.nodes for g in config.groups] == [("QA", "PHYSICS"), ("PHYSICS",)]
    assert "# the physicists' set\n[[groups]]\nname = \"QA-ALL\"  # both\n" in path.read_text()
    cf = ConfigFile(path)
    delete_node(cf, "PHYSICS", [("r", ["SOLO"])], [("QA-ALL", ["QA", "PHYSICS"]), ("SOLO", ["PHYSICS"])])
    config = cf.save()
    assert config.groups == (GroupConfig("QA-ALL", ("QA",)),) and config.rules == ()
    assert "# the physicists' set\n[[groups]]\nname = \"QA-ALL\"  # both\nnodes = [\"QA\"]\n" in path.read_text()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_paces_instances_evenly_and_large_files_by_their_bytes():
    clock = Clock()
    limit = NodeLimit(Rates(instances_per_s=20), clock)
    assert limit.delay(1000) == pytest.approx(0, abs=1e-9)
    limit.take(1000)
    assert limit.delay(1000) == pytest.approx(0.05)  # no burst: the next one 50 ms later
    clock.now += 0.05
    assert limit.delay(1000) == pytest.approx(0, abs=1e-9)
    by_size = NodeLimit(Rates(bytes_per_s=5e6), clock)  # 5 MB/s: a 0.5 MB bucket
    by_size.take(20_000_000)  # a 20 MB RTDOSE goes whole...
    assert by_size.delay(500_000) == pytest.approx((20e6 - 0.5e6 + 0.5e6) / 5e6)  # ...and the next waits 4 s
    clock.now += 4.0
    assert by_size.delay(500_000) == pytest.approx(0, abs=1e-9)
    assert not Rates.of(NodeConfig(name="Q", ae_title="Q", host="h")).limited


def test_due_jobs_come_manual_first_and_a_waiting_manual_job_is_seen_by_the_node_only(tmp_path):
    queue = JobQueue(tmp_path)
    node, other = NodeConfig(name="QA", ae_title="QA", host="h"), NodeConfig(name="PACS", ae_title="P", host="h")
    item = [NewItem("1.2", "1.2.840.10008.5.1.4.1.1.2", "CT", "/x", 10, "1.2.840.10008.1.2.1")]
    bulk = queue.add_job(node, item, origin="rule:nightly")
    later_bulk = queue.add_job(node, item, origin="rule:nightly")
    assert queue.waiting_above("QA", 0, time.time(), exclude=bulk) is None
    elsewhere = queue.add_job(other, item, origin="cli")
    manual = queue.add_job(node, item, origin="manual")
    assert [j.id for j in queue.due(time.time())] == [elsewhere, manual, bulk, later_bulk]
    assert [j.priority for j in queue.due(time.time())] == [1, 1, 0, 0]
    assert queue.waiting_above("QA", 0, time.time(), exclude=bulk) == manual
    assert queue.waiting_above("QA", 1, time.time()) is None  # a manual job never yields to another
    queue.close()


def test_the_sample_copy_round_trips_with_groups(tmp_path):
    """A [[groups]] entry added to the sample by hand survives a console edit of another section untouched."""
    path = Path(shutil.copy(SAMPLE, tmp_path / "rtstation.toml"))
    path.write_text(path.read_text() + '\n[[groups]]\nname = "QA-ALL"   # QA and the archive\nnodes = ["QA", '
                    '"ARCHIVE"]\n')
    cf = ConfigFile(path)
    cf.set("station", "port", 11113)
    assert cf.save().groups == (GroupConfig("QA-ALL", ("QA", "ARCHIVE")),)
    assert path.read_text().endswith('[[groups]]\nname = "QA-ALL"   # QA and the archive\nnodes = ["QA", '
                                     '"ARCHIVE"]\n')


def test_a_rule_to_a_group_with_a_disabled_node_sends_to_the_others_without_an_error(tmp_path):
    from rtstation_tui.engine.outbound.rules import RulesService
    from rtstation_tui.engine.outbound.sender import Enqueued

    config = load(tmp_path, '[[groups]]\nname = "ALL"\nnodes = ["OFF", "QA"]\n[[rules]]\nname = "r"\n'
                            'targets = ["ALL"]\n')
    asked: list[list[str]] = []

    class Sender:
        def enqueue_plan(self, uid, targets, include, origin, transform=""):  # type: ignore[no-untyped-def]
            asked.append(targets)
            return [Enqueued(targets[0], 7, 6, 0, 0)]

    service = object.__new__(RulesService)
    service.sender, service._config = Sender(), lambda: config
    [d] = decide(config.rules, FACTS, config.groups)
    service._send(d, FACTS)
    assert asked == [["QA"]] and d.outcome == "send" and [j.node for j in d.jobs] == ["QA"]
    assert d.describe() == "matched: send to ALL = OFF, QA: job 7 to QA (6 instances)"
    from rtstation_tui.engine.outbound.dryrun import would_queue

    class Queue:
        def delivered(self, node, paths, chain):  # type: ignore[no-untyped-def]
            return set()

        pending = delivered

    class Bundle:
        def ordered(self, parts):  # type: ignore[no-untyped-def]
            return []

    [off, qa] = would_queue(Queue(), None, config.nodes, Bundle(), d)  # type: ignore[arg-type]
    assert (off.node, off.error, qa.node, qa.error) == ("OFF", "disabled, left out of the group's send", "QA", "")
