"""Rewrite the node table in README.md and locales/en/nodeDefs.json from the registered nodes (in the host venv)."""

from exemplar_dev import host
from exemplar_dev.node_reference import LOCALE, README, node_locale, node_table, readme_with_table


def main():
    booted = host.boot()
    README.write_text(readme_with_table(README.read_text(), node_table(booted.pack)))
    LOCALE.parent.mkdir(parents=True, exist_ok=True)
    LOCALE.write_text(node_locale(booted.pack), encoding="utf-8")
    print(f"wrote the node table in {README} and {LOCALE}")


if __name__ == "__main__":
    main()
