# Every target builds the ComfyUI host first if it is missing (scripts/setup_host.sh, idempotent).
RUN := bash scripts/in_host.sh

.PHONY: host browser demo test test-fast test-pure ui bench workflows thumbnails readme lint

host:
	bash scripts/setup_host.sh

demo:  ## run the flagship workflow on the embedded tiny model, print the output image path
	$(RUN) scripts/demo.py $(WORKFLOW)

browser:  ## Debian's chromium for the browser tier (installed once)
	bash scripts/setup_browser.sh

test: browser  ## the whole suite: pure, host, workflow and browser tiers
	$(RUN) -m pytest -c tests/pytest.ini tests $(PYTEST_ARGS)

test-fast:  ## pure, host and workflow tiers without the tests marked slow (no browser)
	$(RUN) -m pytest -c tests/pytest.ini tests/pure tests/host tests/workflows -m "not slow" $(PYTEST_ARGS)

test-pure:
	$(RUN) -m pytest -c tests/pytest.ini tests/pure $(PYTEST_ARGS)

ui:  ## the ComfyUI web UI on 127.0.0.1:8188 with the pack installed
	$(RUN) scripts/serve.py $(UI_ARGS)

bench:  ## benchmarks: ratios against baselines measured in the same run
	$(RUN) bench/run_all.py $(BENCH)

workflows:  ## regenerate workflows/*.json from scripts/exemplar_dev/workflow_specs.py
	$(RUN) scripts/build_workflows.py

thumbnails: browser  ## screenshot every workflow in the real frontend -> workflows/<name>.jpg
	$(RUN) -m pytest -c tests/pytest.ini tests/browser -k workflow_loads $(PYTEST_ARGS)
	$(RUN) scripts/thumbnails.py

readme:  ## regenerate the README node table and locales/en/nodeDefs.json from the registered nodes
	$(RUN) scripts/build_readme_nodes.py

lint:  ## ruff, line length included (also a test: tests/pure/test_lint.py)
	$(RUN) -m ruff check .
