"""The engine: config, store, index, receiver, sender, rules, watcher, events. Never imports Textual."""
