"""Rewrite the node table in README.md from the registered nodes (run inside the host venv)."""

from exemplar_dev import host
from exemplar_dev.node_reference import README, node_table, readme_with_table


def main():
    booted = host.boot()
    README.write_text(readme_with_table(README.read_text(), node_table(booted.pack)))
    print(f"wrote the node table in {README}")


if __name__ == "__main__":
    main()
