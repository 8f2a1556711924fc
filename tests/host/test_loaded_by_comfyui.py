"""The pack as ComfyUI's own custom-node loader sees it."""

import asyncio

from exemplar_dev.host import pack_submodule


def test_every_node_is_registered_through_the_entrypoint(comfy):
    extension = asyncio.run(comfy.pack.comfy_entrypoint())
    node_list = asyncio.run(extension.get_node_list())
    assert node_list, "the extension lists no nodes"
    for node in node_list:
        schema = node.define_schema()
        assert comfy.nodes.NODE_CLASS_MAPPINGS[schema.node_id] is node
        assert schema.node_id.startswith("Exemplar"), schema.node_id
        assert schema.category.startswith("exemplar/")
        assert schema.description, f"{schema.node_id} has no description"
        for item in schema.inputs:
            assert item.tooltip, f"{schema.node_id}.{item.id} has no tooltip"


def test_pack_modules_resolve_to_comfyuis_copy(comfy):
    module = pack_submodule("models.dreaminpainter.tokens")
    assert module.__name__.startswith(comfy.pack.__name__)


def test_readme_node_table_is_current(comfy):
    from exemplar_dev.node_reference import README, node_table, readme_with_table

    text = README.read_text()
    assert readme_with_table(text, node_table(comfy.pack)) == text, (
        "the README's node table is stale: run `make readme`"
    )
