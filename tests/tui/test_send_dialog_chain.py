"""The send dialog names what each node will really get: the profile chosen with ``a``, then the node's own
transforms (``seg`` adds a SEG, ``classic`` splits Enhanced images) and its machine mapping by name."""

from __future__ import annotations

from rtstation_tui.engine.config.nodes import NodeConfig
from rtstation_tui.ui.dialogs.send import SendDialog


def test_a_nodes_own_chain_is_shown_after_the_profile_chosen_here() -> None:
    ai = NodeConfig(name="AI", ae_title="AI", host="127.0.0.1", transforms=("seg:PTV",), machine_map=(("A", "B"),))
    plain = NodeConfig(name="PACS", ae_title="PACS", host="127.0.0.1")
    dialog = SendDialog([ai, plain], [], profiles=("basic",))
    assert str(dialog._prompt(ai)).endswith("→ seg:PTV, then machine_map")
    assert "→" not in str(dialog._prompt(plain))
    dialog.transforms["AI"] = "anonymize:basic"
    assert str(dialog._prompt(ai)).endswith("→ anonymize:basic, then seg:PTV, then machine_map")
