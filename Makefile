.PHONY: install test test-fast test-unit lint typecheck bench all dist screenshots typescript

install:
	python3 -m pip install -e '.[test]'

test:
	python3 -m pytest

# The quick loop while changing code: everything but the tests marked slow.
test-fast:
	python3 -m pytest -m "not slow"

# No process, no server: under a minute.
test-unit:
	python3 -m pytest tests/unit

lint:
	python3 -m ruff check queueapp tests scripts

typecheck:
	python3 -m mypy queueapp

bench:
	python3 scripts/bench

# The TypeScript client, the NestJS module and the example on them: install, build,
# and run the packages' own tests (the example and the conformance suite run under
# pytest once built).
typescript:
	scripts/build-typescript
	npm test --prefix clients/typescript

all: lint typecheck test

dist:
	scripts/build-single-file

# The documentation's pictures (docs/img), taken by the dashboard's browser tests.
screenshots:
	QUEUEAPP_SCREENSHOTS=$(CURDIR)/docs/img python3 -m pytest tests/browser/test_dashboard_browser.py
