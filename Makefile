.PHONY: install test lint typecheck bench all dist

install:
	python3 -m pip install -e '.[test]'

test:
	python3 -m pytest

lint:
	python3 -m ruff check queueapp tests scripts

typecheck:
	python3 -m mypy queueapp

bench:
	python3 scripts/bench

all: lint typecheck test

dist:
	scripts/build-single-file
